package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// The environment variables that override the config file.
const (
	EnvConfig   = "VATIO_CONFIG"
	EnvMQTTAddr = "VATIO_MQTT_ADDR"
	EnvHTTPAddr = "VATIO_HTTP_ADDR"
	EnvDataDir  = "VATIO_DATA_DIR"
	// EnvAdminPassword creates the admin user at start-up when none exists;
	// EnvAdminToken makes sure an admin API token exists.
	EnvAdminPassword = "VATIO_ADMIN_PASSWORD"
	EnvAdminToken    = "VATIO_ADMIN_TOKEN"
	// EnvEncryptionKey is the key that encrypts backups and archives.
	EnvEncryptionKey = "VATIO_ENCRYPTION_KEY"
	// EnvOffsiteAccessKey and EnvOffsiteSecretKey are the object
	// storage's credentials.
	EnvOffsiteAccessKey = "VATIO_OFFSITE_ACCESS_KEY"
	EnvOffsiteSecretKey = "VATIO_OFFSITE_SECRET_KEY"
	// EnvBrokerPassword is the external broker's password.
	EnvBrokerPassword = "VATIO_BROKER_PASSWORD"
	// EnvStoreDSN is the PostgreSQL connection URL (store.dsn), which may
	// hold a password.
	EnvStoreDSN = "VATIO_STORE_DSN"
)

// Load reads the YAML file at path over the defaults. Keys left out keep
// their defaults; an unknown key or a value of the wrong type is an error
// naming the key and its line. Load does not Validate.
func Load(path string) (Config, error) {
	cfg := Default()
	b, err := os.ReadFile(path)
	if err != nil {
		return cfg, fmt.Errorf("config: %w", err)
	}
	if err := Parse(b, &cfg); err != nil {
		return cfg, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// Parse decodes YAML into cfg, setting only the keys present.
func Parse(b []byte, cfg *Config) error {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return err
	}
	if len(doc.Content) == 0 {
		return nil
	}
	return decodeStruct(doc.Content[0], reflect.ValueOf(cfg).Elem(), "")
}

var durationType = reflect.TypeOf(time.Duration(0))

// decodeStruct sets the fields of v from a YAML mapping, key by key, so that
// every error can name the full key (mqtt.addr) rather than a Go type.
func decodeStruct(n *yaml.Node, v reflect.Value, prefix string) error {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		name := strings.TrimSuffix(prefix, ".")
		if name == "" {
			name = "top level"
		}
		return fmt.Errorf("line %d: %s must be a mapping of keys", n.Line, name)
	}
	fields := map[string]reflect.Value{}
	for i := 0; i < v.NumField(); i++ {
		if tag := v.Type().Field(i).Tag.Get("yaml"); tag != "" {
			fields[tag] = v.Field(i)
		}
	}
	var errs []error
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		key := prefix + k.Value
		f, ok := fields[k.Value]
		if !ok {
			errs = append(errs, fmt.Errorf("line %d: unknown key %q", k.Line, key))
			continue
		}
		if seen[k.Value] {
			errs = append(errs, fmt.Errorf("line %d: key %q is set twice", k.Line, key))
			continue
		}
		seen[k.Value] = true
		if f.Kind() == reflect.Struct && f.Type() != durationType {
			if err := decodeStruct(val, f, key+"."); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		if f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.Struct {
			if err := decodeList(val, f, key); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		if f.Kind() == reflect.Slice { // a list of values
			if val.Kind != yaml.SequenceNode && !(val.Kind == yaml.ScalarNode && val.Tag == "!!null") {
				errs = append(errs, fmt.Errorf("line %d: %s must be a list", val.Line, key))
				continue
			}
			for _, item := range val.Content {
				if item.Kind != yaml.ScalarNode {
					errs = append(errs, fmt.Errorf("line %d: %s must be a list of single values", item.Line, key))
				}
			}
			if err := val.Decode(f.Addr().Interface()); err != nil {
				errs = append(errs, fmt.Errorf("line %d: %s: not a list of %s", val.Line, key, kindName(f.Type().Elem())))
			}
			if f.Len() == 0 {
				f.SetZero() // an empty list is no list, as decodeList leaves it
			}
			continue
		}
		if val.Kind != yaml.ScalarNode {
			errs = append(errs, fmt.Errorf("line %d: %s must be a single value", val.Line, key))
			continue
		}
		if err := val.Decode(f.Addr().Interface()); err != nil {
			var te *yaml.TypeError
			if errors.As(err, &te) {
				err = fmt.Errorf("%q is not a valid %s", val.Value, kindName(f.Type()))
			}
			errs = append(errs, fmt.Errorf("line %d: %s: %w", val.Line, key, err))
		}
	}
	return errors.Join(errs...)
}

// decodeList sets a list of structs from a YAML sequence of mappings, each
// decoded key by key like the rest; an empty sequence leaves the list nil.
func decodeList(n *yaml.Node, v reflect.Value, key string) error {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		return fmt.Errorf("line %d: %s must be a list", n.Line, key)
	}
	var errs []error
	list := reflect.MakeSlice(v.Type(), 0, len(n.Content))
	for i, item := range n.Content {
		elem := reflect.New(v.Type().Elem()).Elem()
		if err := decodeStruct(item, elem, fmt.Sprintf("%s[%d].", key, i)); err != nil {
			errs = append(errs, err)
		}
		list = reflect.Append(list, elem)
	}
	if len(n.Content) > 0 {
		v.Set(list)
	}
	return errors.Join(errs...)
}

func kindName(t reflect.Type) string {
	switch {
	case t == durationType:
		return "duration (e.g. 10s, 5m, 24h)"
	case t.Kind() == reflect.Int:
		return "whole number"
	case t.Kind() == reflect.Float64:
		return "number"
	case t.Kind() == reflect.Bool:
		return "true or false"
	}
	return t.Kind().String()
}

// ApplyEnv overrides c with the VATIO_* environment variables that are set.
func (c *Config) ApplyEnv(getenv func(string) string) {
	for _, e := range Environment {
		if v := getenv(e.Name); v != "" {
			field(reflect.ValueOf(c).Elem(), e.Key).SetString(v)
		}
	}
}

// EnvVar is an environment variable that overrides a key of the file.
type EnvVar struct {
	Name string
	Key  string // dotted: http.addr
}

// Environment lists the variables ApplyEnv reads, each over its key.
// (VATIO_CONFIG, which names the file, is read before it.)
var Environment = []EnvVar{
	{EnvMQTTAddr, "mqtt.addr"},
	{EnvHTTPAddr, "http.addr"},
	{EnvDataDir, "data_dir"},
	{EnvAdminPassword, "auth.admin_password"},
	{EnvAdminToken, "auth.admin_token"},
	{EnvEncryptionKey, "encryption.key"},
	{EnvOffsiteAccessKey, "offsite.access_key"},
	{EnvOffsiteSecretKey, "offsite.secret_key"},
	{EnvBrokerPassword, "broker.password"},
	{EnvStoreDSN, "store.dsn"},
}

// field returns the field of v (a Config) at a dotted key; it panics on a
// key that is not there, which the tests of Environment would catch.
func field(v reflect.Value, key string) reflect.Value {
	for part := range strings.SplitSeq(key, ".") {
		found := false
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).Tag.Get("yaml") == part {
				v, found = v.Field(i), true
				break
			}
		}
		if !found {
			panic("config: no key " + key)
		}
	}
	return v
}

// Keys returns every key of Config in dotted form (mqtt.addr), in field order.
func Keys() []string {
	var keys []string
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := f.Tag.Get("yaml")
			if tag == "" {
				continue
			}
			if f.Type.Kind() == reflect.Struct && f.Type != durationType {
				walk(f.Type, prefix+tag+".")
				continue
			}
			// A list of structs (inputs) is one key; its items' keys are
			// checked as they are decoded.
			keys = append(keys, prefix+tag)
		}
	}
	walk(reflect.TypeOf(Config{}), "")
	return keys
}
