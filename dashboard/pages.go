package dashboard

import (
	"cmp"
	"encoding/json"
	"errors"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/vatio-energy/vatio/internal/audit"
	"github.com/vatio-energy/vatio/internal/auth"
	"github.com/vatio-energy/vatio/internal/devices"
	"github.com/vatio-energy/vatio/internal/energy"
	"github.com/vatio-energy/vatio/internal/insight"
	"github.com/vatio-energy/vatio/internal/meter"
	"github.com/vatio-energy/vatio/store"
)

// meterView is a meter as the pages show it.
type meterView struct {
	store.Meter
	// Label is its name, or its id when it has none.
	Label  string
	Status string
	Why    string
	Main   bool
	// PowerNowW is its power now, when HasPowerNow (see
	// store.Meter.PowerNow): only that counts in the site's "Power now".
	PowerNowW   float64
	HasPowerNow bool
}

func (d *Dashboard) view(m store.Meter, now time.Time) meterView {
	status, why := m.Status(now)
	w, ok := m.PowerNow(now)
	return meterView{Meter: m, Label: cmp.Or(m.Info.Name, m.ID), Status: status, Why: why, Main: m.Info.Parent == "",
		PowerNowW: w, HasPowerNow: ok}
}

// meterViews returns every meter, main meters first by site, then the
// sub-meters, each group by label.
func (d *Dashboard) meterViews(now time.Time) []meterView {
	var out []meterView
	for _, m := range d.st.Meters() {
		out = append(out, d.view(m, now))
	}
	slices.SortStableFunc(out, func(a, b meterView) int {
		if a.Main != b.Main {
			if a.Main {
				return -1
			}
			return 1
		}
		return cmp.Or(strings.Compare(a.Site, b.Site), strings.Compare(strings.ToLower(a.Label), strings.ToLower(b.Label)), strings.Compare(a.ID, b.ID))
	})
	return out
}

// localDayStart returns the start of t's day in loc.
func localDayStart(t time.Time, loc *time.Location) time.Time {
	y, m, dd := t.In(loc).Date()
	return time.Date(y, m, dd, 0, 0, 0, 0, loc)
}

// hourly returns meter id's hourly rollups in [from, to).
func (d *Dashboard) hourly(id string, from, to time.Time) ([]store.Bucket, error) {
	bs, _, err := d.st.Rollups(id, store.TierHour, from, to, int(to.Sub(from)/time.Hour)+2)
	return bs, err
}

// dailyKWh returns the energy drawn by meters on each local day from
// first (a local midnight) for days days: the sum of their hourly rollups
// by the local day each hour starts in, so days follow the time zone and
// its daylight saving changes (a day of 23 or 25 hours).
func (d *Dashboard) dailyKWh(ids []string, first time.Time, days int) ([]float64, error) {
	out := make([]float64, days)
	end := first.AddDate(0, 0, days)
	starts := make([]time.Time, days+1)
	for i := range starts {
		starts[i] = first.AddDate(0, 0, i)
	}
	for _, id := range ids {
		bs, err := d.hourly(id, first, end)
		if err != nil {
			return nil, err
		}
		i := 0
		for _, b := range bs {
			for i < days && !b.Start.Before(starts[i+1]) {
				i++
			}
			if i < days && !b.Start.Before(starts[i]) {
				out[i] += b.EnergyWh / 1000
			}
		}
	}
	return out, nil
}

// overviewData is what overview.html renders.
type overviewData struct {
	*base
	Meters []meterView
	// PowerW is the power now of the main meters online, from readings
	// taken now (see meterView.PowerNowW); TodayKWh the
	// energy they drew since local midnight.
	PowerW   float64
	TodayKWh float64
	// TodayFrom is local midnight, for app.js to ask the day's energy;
	// ServerNow the server's time, for app.js to measure silences and
	// readings' ages on the server's clock.
	TodayFrom string
	ServerNow string
	Sites     []string
	Online    int
	Alerts    []store.Alert
	Gauge     *chartSnippet
	Live      *chartSnippet
	// LiveTo is the end of the live chart's hour (Unix ms, the server's
	// clock), and LiveBreaks each of its meters' silence that breaks the
	// line (JSON, ms): app.js moves the hour on and breaks the lines of the
	// readings that arrive as the server did.
	LiveTo     int64
	LiveBreaks string
	// Day is the site's last 24 hours and the next 24 forecast.
	Day  *chartSnippet
	Host string
	// Intro names the broker's MQTT port, and PortFlag is mosquitto_pub's
	// flag for it (" -p PORT", or "" for the default 1883).
	Intro    string
	PortFlag string
}

// overview serves GET /.
func (d *Dashboard) overview(c *fiber.Ctx) error {
	b := d.newBase(c, "overview", "overview.title")
	now := d.now()
	port := strconv.Itoa(d.mqttPort)
	data := &overviewData{base: b, Host: hostName(c.Hostname()), Intro: strings.ReplaceAll(b.Lang.T("empty.intro"), "{port}", port)}
	if d.mqttPort != 1883 {
		data.PortFlag = " -p " + port
	}
	data.Meters = d.meterViews(now)
	midnight := localDayStart(now, d.loc)
	data.TodayFrom = midnight.Format(time.RFC3339)
	data.ServerNow = now.UTC().Format(time.RFC3339Nano)
	sites := map[string]bool{}
	peak := 0.0
	for _, m := range data.Meters {
		if m.Status == store.StatusOnline {
			data.Online++
		}
		if !m.Main {
			continue
		}
		sites[m.Site] = true
		if m.HasPowerNow {
			data.PowerW += m.PowerNowW
		}
		hours, err := d.hourly(m.ID, midnight, now.Add(time.Hour))
		if err != nil {
			return err
		}
		mp := 0.0
		for _, h := range hours {
			data.TodayKWh += h.EnergyWh / 1000
			mp = max(mp, h.MaxW)
		}
		peak += mp
	}
	for s := range sites {
		data.Sites = append(data.Sites, s)
	}
	slices.Sort(data.Sites)
	as, err := d.st.Alerts(5, nil)
	if err != nil {
		return err
	}
	data.Alerts = as
	if d.charts && len(data.Meters) > 0 {
		g, err := gaugeChart(b.Lang, data.PowerW, max(peak, data.PowerW))
		if err != nil {
			return err
		}
		data.Gauge = b.chart(g)
		var series []meterSeries
		hour := window{from: now.Add(-time.Hour), to: now}
		breaks := map[string]float64{}
		for _, m := range data.Meters {
			if !meter.ValidID(m.ID) {
				continue // cannot go into a script unescaped; its card still shows
			}
			s, err := d.lastHour(m, hour)
			if err != nil {
				return err
			}
			series = append(series, s)
			breaks[m.ID] = s.breakMs
		}
		l, err := liveChart(b.Lang, series, hour)
		if err != nil {
			return err
		}
		data.Live = b.chart(l)
		data.LiveTo = hour.to.UnixMilli()
		js, err := json.Marshal(breaks)
		if err != nil {
			return err
		}
		data.LiveBreaks = string(js)
		if dc, ok, err := d.siteDay(b, data.Meters, now); err != nil {
			return err
		} else if ok {
			data.Day = b.chart(dc)
		}
	}
	return d.render(c, "overview", b, data)
}

// lastHour returns meter m's power over w for the live chart: its
// readings, or, when more than livePoints of them (a meter reporting every
// second), its minute means.
func (d *Dashboard) lastHour(m meterView, w window) (meterSeries, error) {
	s := meterSeries{meter: m.ID, name: m.Label, first: m.First}
	// A reading stamped a little ahead of the server's clock is shown as
	// the hour moves on (app.js).
	recs, more, err := d.st.Range(m.ID, w.from, w.to.Add(time.Minute), livePoints)
	if errors.Is(err, store.ErrUnknownMeter) {
		err = nil // deleted since the list was read
	}
	if err != nil {
		return s, err
	}
	var step time.Duration
	if more {
		step = store.TierMinute.Step()
		bs, _, err := d.st.Rollups(m.ID, store.TierMinute, w.from.Truncate(step), w.to.Add(time.Minute), 2*livePoints)
		if err != nil {
			return s, err
		}
		for _, b := range bs {
			if w, ok := b.PowerW(step); ok {
				s.points = append(s.points, [2]float64{float64(b.Start.UnixMilli()), w / 1000})
			}
		}
	} else {
		for _, r := range recs {
			s.points = append(s.points, [2]float64{float64(r.Time.UnixMilli()), r.PowerW / 1000})
		}
	}
	s.breakMs = breakAfter(m.Interval, d.st.MaxGap(), step, s.points)
	return s, nil
}

// settingsData is what the settings form (settings.html) renders: a
// meter. The meters that could be its parent are the page's one
// parent-choices list (Choices), shared by every form on it: a list per
// form would grow with the square of the meters.
type settingsData struct {
	M meterView
}

// settingsOf returns the settings form's data for m.
func settingsOf(m meterView) settingsData {
	return settingsData{M: m}
}

// meterData is what meter.html renders.
type meterData struct {
	*base
	// Phases is a Modbus meter's Phases panel; nil shows none.
	Phases *phasesData
	// CanImport is whether the user may import history (the page links
	// to the Meters page's form, the meter filled in).
	CanImport bool
	M         meterView
	Parent    *meterView
	Kids      []meterView
	Settings  settingsData
	// Choices are the meters its settings form may name as parent.
	Choices []meterView
	History *chartSnippet
	Daily   *chartSnippet
	Profile *chartSnippet
	Year    *chartSnippet
	// From and To bound the history chart at first (RFC 3339).
	From, To string
	// BreakMs is the silence that breaks the history's line as drawn first,
	// and ReadingBreakMs the one that breaks a line of readings (see
	// breakAfter): app.js breaks the finer data it fetches as the chart is
	// zoomed, and the readings that arrive, as the server did.
	BreakMs, ReadingBreakMs float64
	// ServerNow is the server's time, for app.js to tell a reading taken
	// now from one replayed (RFC 3339).
	ServerNow string
	Last30    float64
	// Last30To is the last day of Last30 when it is not today (a meter
	// known only from older history), "" when it is.
	Last30To string
}

// meterPage serves GET /meters/{id}.
func (d *Dashboard) meterPage(c *fiber.Ctx) error {
	id, err := url.PathUnescape(c.Params("id"))
	if err != nil || !meter.ValidID(id) {
		return d.notFound(c)
	}
	id = strings.Clone(id)
	m, err := d.st.Meter(id)
	if errors.Is(err, store.ErrUnknownMeter) {
		return d.notFound(c)
	}
	if err != nil {
		return err
	}
	b := d.newBase(c, "meter", "meter.title")
	now := d.now()
	data := &meterData{base: b, M: d.view(m, now), ServerNow: now.UTC().Format(time.RFC3339Nano), CanImport: d.canImport(c)}
	b.Title = data.M.Label
	all := d.meterViews(now)
	for _, o := range all {
		switch {
		case o.ID == m.Info.Parent:
			data.Parent = &o
		case o.Info.Parent == m.ID:
			data.Kids = append(data.Kids, o)
		}
	}
	data.Settings, data.Choices = settingsOf(data.M), all
	data.Phases = d.phasesOf(m.ID)
	// The last week, or the week up to the newest reading of a meter
	// known only from older history.
	to := now.Add(time.Minute)
	if last := m.Last.Add(time.Minute); last.Before(to.Add(-historySpan)) {
		to = last
	}
	from := to.Add(-historySpan)
	data.From, data.To = from.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339)
	if d.charts {
		if err := d.meterCharts(b, data, window{from: from, to: to}); err != nil {
			return err
		}
	}
	return d.render(c, "meter", b, data)
}

// historyPoints is what the history chart asks for, at step=auto.
const historyPoints = 800

// historySpan is the time the history chart covers.
const historySpan = 7 * 24 * time.Hour

// meterCharts renders the charts of a meter's page, its history over w.
func (d *Dashboard) meterCharts(b *base, data *meterData, w window) error {
	m := data.M
	from, to := w.from, w.to
	tier, err := d.autoTier(m.ID, from, to, historyPoints)
	if err != nil {
		return err
	}
	var pts [][2]float64
	if tier == store.TierRaw {
		recs, _, err := d.st.Range(m.ID, from, to, historyPoints)
		if err != nil {
			return err
		}
		for _, r := range recs {
			pts = append(pts, [2]float64{float64(r.Time.UnixMilli()), r.PowerW / 1000})
		}
	} else {
		bs, _, err := d.st.Rollups(m.ID, tier, from, to, historyPoints)
		if err != nil {
			return err
		}
		for _, bk := range bs {
			if w, ok := bk.PowerW(tier.Step()); ok {
				pts = append(pts, [2]float64{float64(bk.Start.UnixMilli()), w / 1000})
			}
		}
	}
	var fpts [][2]float64
	fc, err := insight.Forecast(d.st, []string{m.ID}, d.now(), 24)
	if err != nil {
		return err
	}
	for _, p := range fc {
		fpts = append(fpts, [2]float64{float64(p.T.UnixMilli()), roundTo(p.PowerW/1000, 3)})
	}
	data.ReadingBreakMs = breakAfter(m.Interval, d.st.MaxGap(), 0, nil)
	data.BreakMs = breakAfter(m.Interval, d.st.MaxGap(), tier.Step(), pts)
	h, err := historyChart(b.Lang, m.ID, w, pts, data.BreakMs, fpts)
	if err != nil {
		return err
	}
	data.History = b.chart(h)

	// The 30 days, 8 weeks and year up to now, or, as the history, up to
	// the newest reading of a meter known only from older history (an
	// import).
	now := d.now()
	if w.to.Before(now) {
		now = w.to.Add(-time.Minute)
	}
	today := localDayStart(now, d.loc)
	if !today.Equal(localDayStart(d.now(), d.loc)) {
		data.Last30To = b.Lang.Day(today, d.loc)
	}
	first := today.AddDate(0, 0, -29)
	days, err := d.dailyKWh([]string{m.ID}, first, 30)
	if err != nil {
		return err
	}
	labels := make([]string, 30)
	for i := range labels {
		labels[i] = b.Lang.Day(first.AddDate(0, 0, i), d.loc)
		data.Last30 += days[i]
	}
	dc, err := dailyChart(b.Lang, labels, days)
	if err != nil {
		return err
	}
	data.Daily = b.chart(dc)

	// Load profile: mean power by local weekday and hour over 8 weeks.
	var sum, n [7][24]float64
	hours, err := d.hourly(m.ID, today.AddDate(0, 0, -56), now.Add(time.Hour))
	if err != nil {
		return err
	}
	for _, h := range hours {
		if h.N == 0 {
			continue
		}
		t := h.Start.In(d.loc)
		wd := (int(t.Weekday()) + 6) % 7
		sum[wd][t.Hour()] += h.MeanW
		n[wd][t.Hour()]++
	}
	var cells [][3]float64
	for wd := range 7 {
		for hr := range 24 {
			if n[wd][hr] > 0 {
				cells = append(cells, [3]float64{float64(hr), float64(wd), sum[wd][hr] / n[wd][hr] / 1000})
			}
		}
	}
	pc, err := profileChart(b.Lang, cells)
	if err != nil {
		return err
	}
	data.Profile = b.chart(pc)

	// The year's daily energy, as a calendar.
	jan1 := time.Date(now.In(d.loc).Year(), 1, 1, 0, 0, 0, 0, d.loc)
	ndays := int(today.Sub(jan1).Hours()/24+0.5) + 1
	year, err := d.dailyKWh([]string{m.ID}, jan1, ndays)
	if err != nil {
		return err
	}
	var cal [][2]any
	for i, kwh := range year {
		if kwh > 0 {
			cal = append(cal, [2]any{jan1.AddDate(0, 0, i).Format(time.DateOnly), roundTo(kwh, 3)})
		}
	}
	yc, err := calendarChart(b.Lang, jan1.Year(), cal)
	if err != nil {
		return err
	}
	data.Year = b.chart(yc)
	return nil
}

// autoTier picks the finest tier with at most max entries in the range, as
// the API's step=auto does.
func (d *Dashboard) autoTier(id string, from, to time.Time, limit int) (store.Tier, error) {
	for _, t := range []store.Tier{store.TierRaw, store.TierMinute, store.TierHour} {
		n, err := d.st.Count(id, t, from, to, limit)
		if err != nil {
			return 0, err
		}
		if n > 0 && n <= limit {
			return t, nil
		}
	}
	return store.TierHour, nil
}

// metersData is what meters.html renders: a row, with its settings form,
// per meter.
type metersData struct {
	*base
	Rows []settingsData
	// Choices are the meters a settings form may name as parent.
	Choices []meterView
	// CanImport is whether the user may import history (operators);
	// ImportForm is the import form, empty or as refused (then Failed),
	// and Imported what the last import stored (after its redirect).
	CanImport  bool
	ImportForm *importFormData
	Imported   *importResult
	// Formats are the import form's formats, "" for auto.
	Formats []string
}

// metersPage serves GET /meters: ?meter= fills in the import form's meter,
// and the import form's redirect says what it imported.
func (d *Dashboard) metersPage(c *fiber.Ctx) error {
	b := d.newBase(c, "meters", "meters.title")
	data := d.metersData(c, b)
	if id := c.Query("meter"); meter.ValidID(id) {
		data.ImportForm.Meter = id
	}
	data.Imported = importResultOf(c, b.Lang, d.loc)
	return d.render(c, "meters", b, data)
}

// metersData is the Meters page's data, its import form empty.
func (d *Dashboard) metersData(c *fiber.Ctx, b *base) *metersData {
	all := d.meterViews(d.now())
	data := &metersData{base: b, CanImport: d.canImport(c), ImportForm: &importFormData{}, Formats: importFormats, Choices: all}
	for _, m := range all {
		data.Rows = append(data.Rows, settingsOf(m))
	}
	return data
}

// alertsData is what alerts.html renders.
type alertsData struct {
	*base
	// Offline are the meters offline now (not those known only from
	// history), and Firing the alerts of rules
	// whose condition still holds: what is active.
	Offline []meterView
	Firing  []store.Alert
	// History is every other alert, newest first.
	History []store.Alert
}

// alertsPage serves GET /alerts.
func (d *Dashboard) alertsPage(c *fiber.Ctx) error {
	b := d.newBase(c, "alerts", "alerts.title")
	now := d.now()
	data := &alertsData{base: b}
	for _, m := range d.meterViews(now) {
		if m.Status == store.StatusOffline && m.Why != store.OfflineHistory { // history never went missing
			data.Offline = append(data.Offline, m)
		}
	}
	as, err := d.st.Alerts(200, nil)
	if err != nil {
		return err
	}
	for _, a := range as {
		if a.State == store.AlertFiring {
			data.Firing = append(data.Firing, a)
		} else {
			data.History = append(data.History, a)
		}
	}
	return d.render(c, "alerts", b, data)
}

// accessData is what access.html renders: who may use Vatio.
type accessData struct {
	*base
	Users  []auth.User
	Tokens []auth.Token
	// DevicesOn is whether MQTT devices are managed here; Devices are
	// their credentials (without the password hashes).
	DevicesOn bool
	Devices   []devices.Device
	// AuditOn is whether there is an audit log; Audit its newest entries.
	AuditOn bool
	Audit   []audit.Entry
}

// accessAuditEntries is how many of the audit log's newest entries the
// Access page shows; the API gives the others.
const accessAuditEntries = 50

// accessPage serves GET /access (admin): the users, the API tokens and the
// MQTT devices, with forms that add and remove them through the API, and
// the audit log's newest entries.
func (d *Dashboard) accessPage(c *fiber.Ctx) error {
	b := d.newBase(c, "access", "access.title")
	data := &accessData{base: b, Users: d.auth.Users(), Tokens: d.auth.Tokens(), DevicesOn: d.devices != nil}
	slices.SortFunc(data.Users, func(a, b auth.User) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(data.Tokens, func(a, b auth.Token) int { return b.Created.Compare(a.Created) })
	if d.devices != nil {
		data.Devices = d.devices.List()
	}
	if d.audit != nil {
		es, err := d.audit.List(accessAuditEntries, nil)
		if err != nil {
			return err
		}
		data.AuditOn, data.Audit = true, es
	}
	return d.render(c, "access", b, data)
}

// notFound serves the page for an unknown meter or path.
func (d *Dashboard) notFound(c *fiber.Ctx) error {
	b := d.newBase(c, "notfound", "notfound.title")
	c.Status(fiber.StatusNotFound)
	return d.render(c, "notfound", b, b)
}

func roundTo(v float64, decimals int) float64 {
	p := 1.0
	for range decimals {
		p *= 10
	}
	return float64(int64(v*p+0.5)) / p
}

// mainIDs returns the ids of the main meters.
func mainIDs(ms []meterView) []string {
	var out []string
	for _, m := range ms {
		if m.Main {
			out = append(out, m.ID)
		}
	}
	return out
}

// costsData is what costs.html renders.
type costsData struct {
	*base
	Currency string
	// Today and Month are the energy and cost so far, Month with the
	// month's fixed charges and peak demand.
	TodayKWh, TodayCost           float64
	MonthKWh, MonthCost, MonthCO2 float64
	FixedCharge, DemandCharge     float64
	// TodayFixed is today's share of FixedCharge.
	TodayFixed   float64
	PeakKW       float64
	PeakAt       time.Time
	Days, Months *chartSnippet
	HasMeters    bool
}

// costsPage serves GET /costs: what energy costs, today, this month and
// month by month, with the tariff's charges and the month's peak demand.
func (d *Dashboard) costsPage(c *fiber.Ctx) error {
	b := d.newBase(c, "costs", "costs.title")
	now := d.now()
	tr := d.tariff.Current()
	data := &costsData{base: b, Currency: tr.Currency}
	all := d.meterViews(now)
	mains := mainIDs(all)
	data.HasMeters = len(mains) > 0
	// A site's daily charge is booked from the day its data begins (see
	// store.Meter.Since), none for the days before Vatio knew of it.
	siteMeters := map[string][]store.Meter{}
	for _, m := range all {
		if m.Main {
			siteMeters[m.Site] = append(siteMeters[m.Site], m.Meter)
		}
	}
	sites := map[string]time.Time{} // each site's since
	for s, ms := range siteMeters {
		sites[s] = energy.SiteSince(ms...)
	}
	month := energy.Month.Floor(now, tr.Location)
	today := energy.Day.Floor(now, tr.Location)
	days, err := energy.Series(d.st, mains, energy.Day, month, now, tr)
	if err != nil {
		return err
	}
	labels := make([]string, len(days))
	cost := make([]float64, len(days))
	for i, bk := range days {
		labels[i] = b.Lang.Day(bk.Start, tr.Location)
		fixed := 0.0
		for _, since := range sites {
			fixed += tr.DailyCharge * float64(energy.ChargedDays(since, bk.Start, bk.End, tr.Location))
		}
		data.FixedCharge += fixed
		cost[i] = bk.Cost + fixed
		data.MonthKWh += bk.InKWh
		data.MonthCost += bk.Cost
		data.MonthCO2 += bk.CO2Kg
		if !bk.Start.Before(today) {
			data.TodayKWh += bk.InKWh
			data.TodayCost += cost[i]
			data.TodayFixed += fixed
		}
	}
	for _, ms := range siteMeters {
		ids := make([]string, len(ms))
		for i, m := range ms {
			ids[i] = m.ID
		}
		_, peak, err := energy.Demands(d.st, ids, month, now)
		if err != nil {
			return err
		}
		data.DemandCharge += peak.KW * tr.DemandChargeKW
		if peak.KW > data.PeakKW {
			data.PeakKW, data.PeakAt = peak.KW, peak.At
		}
	}
	data.MonthCost += data.FixedCharge + data.DemandCharge
	if d.charts && data.HasMeters {
		ch, err := costChart(b.Lang, dayCostID, tr.Currency, labels, cost)
		if err != nil {
			return err
		}
		data.Days = b.chart(ch)
		months, err := energy.Series(d.st, mains, energy.Month, month.AddDate(0, -11, 0), now, tr)
		if err != nil {
			return err
		}
		ml := make([]string, len(months))
		mc := make([]float64, len(months))
		for i, bk := range months {
			ml[i] = b.Lang.months[bk.Start.Month()-1] + " " + bk.Start.Format("06")
			mc[i] = bk.Cost
		}
		ch, err = costChart(b.Lang, monthsID, tr.Currency, ml, mc)
		if err != nil {
			return err
		}
		data.Months = b.chart(ch)
	}
	return d.render(c, "costs", b, data)
}

// advice is a recommendation as the page writes it, in its language.
type advice struct {
	insight.Recommendation
	Title, Detail string
}

// savingsData is what savings.html renders.
type savingsData struct {
	*base
	Currency string
	Total    float64
	Advice   []advice
}

// savingsPage serves GET /savings: the recommendations, written from their
// evidence in the page's language.
func (d *Dashboard) savingsPage(c *fiber.Ctx) error {
	b := d.newBase(c, "savings", "savings.title")
	now := d.now()
	tr := d.tariff.Current()
	rs, err := insight.Recommend(d.st, d.st.Meters(), tr, now)
	if err != nil {
		return err
	}
	data := &savingsData{base: b, Currency: tr.Currency}
	for _, r := range rs {
		data.Total += r.SavingPerYear
		data.Advice = append(data.Advice, advice{Recommendation: r,
			Title: b.Lang.recommendation(r, "title", tr.Currency), Detail: b.Lang.recommendation(r, "detail", tr.Currency)})
	}
	return d.render(c, "savings", b, data)
}

// siteDay renders the main meters' hourly power over the last day and the
// forecast of the next; ok is false without history to show.
func (d *Dashboard) siteDay(b *base, ms []meterView, now time.Time) (chartSnippet, bool, error) {
	mains := mainIDs(ms)
	sum := map[int64]float64{}
	for _, id := range mains {
		hs, err := d.hourly(id, now.Add(-24*time.Hour).Truncate(time.Hour), now)
		if err != nil {
			return chartSnippet{}, false, err
		}
		for _, h := range hs {
			sum[h.Start.UnixMilli()] += h.EnergyWh - h.ExportWh // Wh in an hour: mean W
		}
	}
	fc, err := insight.Forecast(d.st, mains, now, 24)
	if err != nil || (len(sum) < 2 && len(fc) == 0) {
		return chartSnippet{}, false, err
	}
	// The hour in progress: its energy so far over the time so far, not
	// over the whole hour (at 07:05, 400 W drawn read as 33 W).
	cur := now.Truncate(time.Hour)
	if wh, ok := sum[cur.UnixMilli()]; ok {
		if el := now.Sub(cur); el >= time.Minute {
			sum[cur.UnixMilli()] = wh * float64(time.Hour) / float64(el)
		} else {
			delete(sum, cur.UnixMilli()) // a few seconds' energy says nothing yet
		}
	}
	var actual, forecast [][2]float64
	for ms, w := range sum {
		actual = append(actual, [2]float64{float64(ms), roundTo(w/1000, 3)})
	}
	slices.SortFunc(actual, func(a, b [2]float64) int { return cmp.Compare(a[0], b[0]) })
	for _, p := range fc {
		forecast = append(forecast, [2]float64{float64(p.T.UnixMilli()), roundTo(p.PowerW/1000, 3)})
	}
	from := now.Add(-24 * time.Hour).Truncate(time.Hour)
	c, err := dayChart(b.Lang, window{from: from, to: from.Add(49 * time.Hour)}, actual, forecast)
	return c, err == nil, err
}
