package dashboard

// modbusES says in Spanish why a Modbus device was refused or is not
// polled: each entry is the English format of one of internal/modbus's
// problems (its key, as a gettext msgid is) and its Spanish words, with
// the same verbs in the same order (TestModbusProblemsSaid checks both).
var modbusES = map[string]string{
	"%d registers: at most %d":                                       "%d registros: como mucho %d",
	"%s %q: use high_first or low_first":                             "%s %q: usa high_first o low_first",
	"%s is read for the meter, not per phase":                        "%s se lee para el medidor, no por fase",
	"address %d: a %s there runs past register 65535":                "address %d: un %s ahí pasa del registro 65535",
	"config.yaml has a device of this name, which is polled instead": "config.yaml tiene un dispositivo con este nombre, que es el que se lee",
	"function %q: use holding or input":                              "function %q: usa holding o input",
	"give a profile (%s) or registers":                               "indica un perfil (%s) o registros",
	"give profile or registers, not both":                            "indica perfil o registros, no ambos",
	"interval %s: use %s to %s":                                      "intervalo %s: usa de %s a %s",
	"modbus device %q: %v":                                           "dispositivo Modbus %q: %v",
	"modbus device %q: its serial settings (%d %s %d) are not those of the other devices on %s (%d %s %d): a line has one speed, parity and stop bits": "dispositivo Modbus %q: sus ajustes serie (%d %s %d) no son los de los demás dispositivos de %s (%d %s %d): una línea tiene una velocidad, paridad y bits de parada",
	"modbus device %q: two devices of that name":                    "dispositivo Modbus %q: dos dispositivos con ese nombre",
	"modbus device %q: unit %d on %s is device %q's":                "dispositivo Modbus %q: la unidad %d de %s es la del dispositivo %q",
	"name %q: at most %d characters, so that name:L1 is a meter id": "nombre %q: como mucho %d caracteres, para que nombre:L1 sea un id de medidor",
	"name %q: meter %s exists, fed by %s: its readings and this device's would mix; choose another name, or delete that meter first": "nombre %q: el medidor %s existe, alimentado por %s: sus lecturas y las de este dispositivo se mezclarían; elige otro nombre, o elimina antes ese medidor",
	"name %q: use 1 to %d letters, digits, '.', '_' or '-' (it becomes the meter's id; its phases are name:L1 to name:L3)":           "nombre %q: usa de 1 a %d letras, cifras, '.', '_' o '-' (será el id del medidor; sus fases son nombre:L1 a nombre:L3)",
	"no register of power_w: a reading needs the meter's active power":                                                               "ningún registro power_w: una lectura necesita la potencia activa del medidor",
	"parity %q: use none, even or odd":                                                                "paridad %q: usa none, even u odd",
	"phase %q: use L1, L2 or L3, or leave it out for the total":                                       "fase %q: usa L1, L2 o L3, o déjala vacía para el total",
	"profile %q: use one of %s, or give registers":                                                    "perfil %q: usa uno de %s, o indica registros",
	"quantity %q: use one of %s":                                                                      "quantity %q: usa una de %s",
	"registers[%d]: %v":                                                                               "registros[%d]: %v",
	"scale %v: use a positive number up to %g (1000 for kW or kWh), or leave it out for 1":            "escala %v: usa un número positivo hasta %g (1000 para kW o kWh), o déjala vacía para 1",
	"speed %d: use the line's baud rate, such as 9600 or 19200":                                       "velocidad %d: usa los baudios de la línea, como 9600 o 19200",
	"speed and stop_bits are positive numbers":                                                        "la velocidad y los bits de parada son números positivos",
	"stop_bits %d: use 1 or 2":                                                                        "bits de parada %d: usa 1 o 2",
	"timeout %s: use %s to %s":                                                                        "tiempo de espera %s: usa de %s a %s",
	"type %q: use int16, uint16, int32, uint32, int64, uint64, float32 or float64":                    "type %q: usa int16, uint16, int32, uint32, int64, uint64, float32 o float64",
	"unit %d: use 1 to 247 (or 0 or 255 for a TCP device that ignores it)":                            "unidad %d: usa de 1 a 247 (o 0 o 255 para un dispositivo TCP que la ignora)",
	"url %q: give host:port, such as %s://192.168.1.50:502":                                           "url %q: indica host:puerto, como %s://192.168.1.50:502",
	"url %q: give the serial device's path under /dev, such as rtu:///dev/ttyUSB0 (or a link to one)": "url %q: indica la ruta del dispositivo serie en /dev, como rtu:///dev/ttyUSB0 (o un enlace a él)",
	"url %q: use tcp://host:port, rtu:///dev/ttyUSB0 or rtuovertcp://host:port":                       "url %q: usa tcp://host:puerto, rtu:///dev/ttyUSB0 o rtuovertcp://host:puerto",
	"url: at most %d characters":                                                                      "url: como mucho %d caracteres",
}

// modbusFormats are l's words for internal/modbus's problems; nil says
// them in English.
func (l *language) modbusFormats() map[string]string {
	if l.Code == "es" {
		return modbusES
	}
	return nil
}
