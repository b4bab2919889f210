// Vatio dashboard: keeps the server-rendered pages live with the API's
// Server-Sent Events stream (/api/v1/stream), fetches finer data as a
// history chart is zoomed, and sends meter settings to the JSON API. Plain
// JavaScript, no build step, no framework; everything it loads comes from
// the same origin.
//
// The page says which it is (<html data-page>), its language (lang) and its
// time zone (data-tz), and hands over its texts as JSON (#texts). Charts are
// go-echarts' ECharts instances, found with echarts.getInstanceByDom.
(function () {
  "use strict";

  var root = document.documentElement;
  var page = root.dataset.page;
  var lang = root.lang || "en";
  var tz = root.dataset.tz || undefined;
  var texts = {};
  try {
    texts = JSON.parse(document.getElementById("texts").textContent) || {};
  } catch (e) {
    texts = {};
  }

  function t(key) {
    return Object.prototype.hasOwnProperty.call(texts, key) ? texts[key] : key;
  }

  // Formats, as the server writes them (i18n.go): grouped thousands, the
  // language's separators, W/kW/MW and kWh/MWh.
  var locale = lang === "en" ? "en-GB" : lang;
  var numberFormats = {};
  function number(v, decimals) {
    var f = numberFormats[decimals];
    if (!f) {
      f = numberFormats[decimals] = new Intl.NumberFormat(locale, {
        minimumFractionDigits: decimals, maximumFractionDigits: decimals, useGrouping: "always"
      });
    }
    return f.format(v);
  }
  function power(w) {
    var a = Math.abs(w);
    if (a < 999.5) return number(w, 0) + " W";
    if (a < 999995) return number(w / 1e3, 2) + " kW";
    return number(w / 1e6, 2) + " MW";
  }
  function energy(kwh) {
    var a = Math.abs(kwh);
    if (a < 99.995) return number(kwh, 2) + " kWh";
    if (a < 9999.95) return number(kwh, 1) + " kWh";
    return number(kwh / 1e3, 2) + " MWh";
  }
  var dateFormat = null;
  function dateTime(iso) {
    // To the second first, as the server does: an imported interval's last
    // reading, a nanosecond before its end, shows the end.
    var d = new Date(Math.round(new Date(iso).getTime() / 1000) * 1000);
    if (isNaN(d.getTime()) || d.getTime() <= 0) return "–";
    if (!dateFormat) {
      try {
        dateFormat = new Intl.DateTimeFormat(locale, {
          timeZone: tz, day: "numeric", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit", hourCycle: "h23"
        });
      } catch (e) { // an unknown zone: the browser's
        dateFormat = new Intl.DateTimeFormat(locale, {
          day: "numeric", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit", hourCycle: "h23"
        });
      }
    }
    return dateFormat.format(d);
  }

  // Times on the charts' axes, in the dashboard's time zone (ECharts would
  // use the browser's): the hour, or the date at midnight.
  var hourFormat = null, dayFormat = null;
  function axisTime(ms) {
    if (!hourFormat) {
      try {
        hourFormat = new Intl.DateTimeFormat(locale, { timeZone: tz, hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
        dayFormat = new Intl.DateTimeFormat(locale, { timeZone: tz, day: "numeric", month: "short" });
      } catch (e) {
        hourFormat = new Intl.DateTimeFormat(locale, { hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
        dayFormat = new Intl.DateTimeFormat(locale, { day: "numeric", month: "short" });
      }
    }
    var hm = hourFormat.format(ms);
    if (hm === "00:00") return dayFormat.format(ms);
    var sec = Math.floor(ms / 1000) % 60;
    return sec ? hm + ":" + String(sec).padStart(2, "0") : hm;
  }
  // plain formats an axis value: up to two decimals, in the language.
  var plainFormat = null;
  function plain(v) {
    if (!plainFormat) plainFormat = new Intl.NumberFormat(locale, { maximumFractionDigits: 2, useGrouping: "always" });
    return plainFormat.format(v);
  }

  // localNumbers makes the charts write numbers as the language does
  // (ECharts writes 1,234.5 whatever the page's language).
  function localNumbers() {
    chartIds.forEach(function (id) {
      var chart = chartOf(id);
      if (!chart) return;
      var opt = chart.getOption();
      var o = {};
      if (opt.yAxis && opt.yAxis.length && opt.yAxis[0].type === "value") {
        o.yAxis = [{ axisLabel: { formatter: function (v) { return plain(v); } } }];
      }
      var unit = id === "daily" || id === "year" ? " kWh" : id === "daycost" || id === "months" ? "" : " kW";
      o.tooltip = { valueFormatter: function (v) { return typeof v === "number" ? number(v, unit === " kW" ? 3 : 2) + unit : "-"; } };
      if (id === "gauge") {
        o.series = [{
          splitNumber: 5,
          axisLabel: { formatter: function (v) { return plain(v); } },
          detail: { formatter: function (v) { return power(v * 1000); } }
        }];
      }
      if (id === "profile" || id === "year") {
        // The scale's ends and handles: to two decimals, or three under
        // 0.1 (a year of 0.065 kWh read "0 ... 0").
        var top = ((opt.visualMap || [])[0] || {}).max || 0;
        o.visualMap = { formatter: function (v) { return number(v, top < 0.1 ? 3 : top < 10 ? 2 : 0); } };
        o.tooltip = { formatter: function (p) {
          var v = p.value[2] !== undefined ? p.value[2] : p.value[1];
          return p.marker + (id === "year" ? dateTimeDay(p.value[0]) + ": " + number(v, 2) + " kWh" : number(v, 2) + " kW");
        } };
      }
      chart.setOption(o);
    });
  }
  function dateTimeDay(s) {
    var parts = String(s).split("-");
    if (parts.length !== 3) return s;
    return new Intl.DateTimeFormat(locale, { day: "numeric", month: "short", year: "numeric", timeZone: "UTC" })
      .format(Date.UTC(+parts[0], +parts[1] - 1, +parts[2]));
  }

  // Time axes get their ticks here, in the dashboard's time zone: ECharts
  // places them in the browser's, so on a browser in another zone the
  // labels fell on uneven hours (20:00 02:00 07:00 ...) and a day's start
  // was never labelled. The ticks are even steps of the local clock
  // (midnights for steps of days), as many as the chart's width takes; the
  // first label, and the first of each day, carry the date.
  var partsFormat = null;
  var offsets = {};
  // offsetAt returns the dashboard zone's offset from UTC at ms, in ms.
  function offsetAt(ms) {
    var key = Math.floor(ms / 900000);
    if (offsets[key] !== undefined) return offsets[key];
    if (!partsFormat) {
      var o = { year: "numeric", month: "numeric", day: "numeric", hour: "numeric", minute: "numeric", second: "numeric", hourCycle: "h23" };
      try {
        partsFormat = new Intl.DateTimeFormat("en-US", Object.assign({ timeZone: tz }, o));
      } catch (e) {
        partsFormat = new Intl.DateTimeFormat("en-US", o);
      }
    }
    var p = {};
    partsFormat.formatToParts(key * 900000).forEach(function (x) { p[x.type] = Number(x.value); });
    return (offsets[key] = Date.UTC(p.year, p.month - 1, p.day, p.hour % 24, p.minute, p.second) - key * 900000);
  }
  var MINUTE = 60000, HOUR = 3600000, DAY = 86400000;
  var TICK_STEPS = [1000, 2000, 5000, 10000, 15000, 30000, MINUTE, 2 * MINUTE, 5 * MINUTE, 10 * MINUTE, 15 * MINUTE, 30 * MINUTE,
    HOUR, 2 * HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR, DAY, 2 * DAY, 7 * DAY, 14 * DAY, 28 * DAY];
  // axisTicks returns the ticks of [from, to] for a chart width px wide,
  // and their step.
  function axisTicks(from, to, width) {
    var most = Math.max(2, Math.floor(width / 80));
    var step = TICK_STEPS[TICK_STEPS.length - 1];
    for (var i = 0; i < TICK_STEPS.length; i++) {
      if ((to - from) / TICK_STEPS[i] <= most) { step = TICK_STEPS[i]; break; }
    }
    var ticks = [];
    var local = Math.ceil((from + offsetAt(from)) / step) * step;
    var guess = offsetAt(from);
    for (var n = 0; n < 200; n++, local += step) {
      if (step > DAY && Math.round(local / DAY) % Math.round(step / DAY) !== 0) continue;
      var t = local - guess;
      if (offsetAt(t) !== guess) { guess = offsetAt(t); t = local - guess; }
      if (t > to) break;
      if (t >= from && (!ticks.length || t > ticks[ticks.length - 1])) ticks.push(t);
    }
    return { ticks: ticks, step: step };
  }
  function localDay(ms) { return Math.floor((ms + offsetAt(ms)) / DAY); }

  function localTimes(chart) {
    var current = { ticks: [], step: 0 };
    function label(v) {
      var i = current.ticks.indexOf(v);
      var tm = axisTime(v);
      if (current.step >= DAY) return dayLabel(v);
      if (i > 0 && localDay(current.ticks[i - 1]) === localDay(v)) return tm;
      if (hourFormat.format(v) === "00:00") return dayLabel(v);
      // The first label, on an axis of more than a day, says its day too.
      var ticks = current.ticks;
      var long = ticks.length > 1 && ticks[ticks.length - 1] - ticks[0] >= DAY;
      return i > 0 || long ? dayLabel(v) + " " + tm : tm;
    }
    // retick sets the ticks of the axis's extent now (zoomed, or moved on
    // with the live hour), when they changed.
    function retick() {
      var axis;
      try {
        axis = chart.getModel().getComponent("xAxis", 0).axis;
      } catch (e) {
        return;
      }
      if (!axis || !axis.scale) return;
      var ext = axis.scale.getExtent();
      var next = axisTicks(ext[0], ext[1], chart.getWidth());
      if (next.step === current.step && next.ticks.join() === current.ticks.join()) return;
      current = next;
      chart.setOption({ xAxis: [{ axisLabel: { customValues: next.ticks }, axisTick: { customValues: next.ticks } }] });
    }
    axisTime(0); // makes hourFormat
    chart.setOption({
      xAxis: [{
        axisLabel: { formatter: label },
        axisPointer: { label: { formatter: function (p) { return dateTime(p.value); } } }
      }],
      tooltip: { axisPointer: { type: "line" } }
    });
    retick();
    chart.on("finished", retick);
  }
  function dayLabel(ms) {
    axisTime(0);
    return dayFormat.format(ms);
  }

  function setData(el, value, text) {
    if (!el) return;
    el.value = String(value);
    el.textContent = text;
  }

  // Charts.

  function chartOf(id) {
    var el = document.getElementById(id);
    return el && window.echarts ? window.echarts.getInstanceByDom(el) : null;
  }
  var chartIds = ["gauge", "live", "history", "daily", "profile", "year", "daycost", "months", "day"];

  // applyTheme gives the charts the page's colours (app.css), light or dark.
  function applyTheme() {
    var css = getComputedStyle(root);
    var fg = css.getPropertyValue("--fg").trim();
    var muted = css.getPropertyValue("--muted").trim();
    var grid = css.getPropertyValue("--grid").trim();
    if (!fg || !muted || !grid) return; // app.css did not load: keep ECharts' colours.
    chartIds.forEach(function (id) {
      var chart = chartOf(id);
      if (!chart) return;
      var opt = chart.getOption();
      var axis = {
        nameTextStyle: { color: muted },
        axisLabel: { color: muted },
        axisLine: { lineStyle: { color: grid } },
        splitLine: { lineStyle: { color: grid } }
      };
      var o = { backgroundColor: "transparent", textStyle: { color: fg } };
      if (opt.legend && opt.legend.length) o.legend = { textStyle: { color: fg }, pageTextStyle: { color: fg } };
      if (opt.xAxis && opt.xAxis.length) o.xAxis = axis;
      if (opt.yAxis && opt.yAxis.length) o.yAxis = axis;
      if (opt.visualMap && opt.visualMap.length) o.visualMap = { textStyle: { color: fg } };
      if (opt.calendar && opt.calendar.length) {
        o.calendar = { dayLabel: { color: muted }, monthLabel: { color: muted }, itemStyle: { color: "transparent", borderColor: grid }, splitLine: { lineStyle: { color: muted } } };
      }
      if (id === "gauge") o.series = [{ detail: { color: fg }, axisLabel: { color: muted }, title: { color: muted } }];
      chart.setOption(o);
    });
  }

  // Lines with breaks, as the server draws them (lines.go): a [ms, null]
  // point in the middle of a silence longer than the line's break ends the
  // line (connectNulls is false), and a point alone between two silences
  // is drawn as a dot, the only symbol a power line shows.

  // points returns a series' data as [ms, kW or null] pairs.
  function points(data) {
    return (data || []).map(function (d) { return Array.isArray(d) ? d : d.value; });
  }
  var STEP_MS = { raw: 0, "1m": 60000, "1h": 3600000, "1d": 86400000 };
  // breakFor is breakAfter (lines.go): the longest of baseMs (the meter's
  // usual interval's), the step's and the points' median spacing's, each
  // half again.
  function breakFor(baseMs, stepMs, pts) {
    var ms = Math.max(baseMs, 1.5 * stepMs);
    if (pts.length >= 8) {
      var gaps = [];
      for (var i = 1; i < pts.length; i++) gaps.push(pts[i][0] - pts[i - 1][0]);
      gaps.sort(function (a, b) { return a - b; });
      ms = Math.max(ms, 1.5 * gaps[Math.floor(gaps.length / 2)]);
    }
    return ms;
  }
  // withBreaks returns pts (no nulls) with a break in every silence longer
  // than breakMs.
  function withBreaks(pts, breakMs) {
    var out = [];
    pts.forEach(function (p, i) {
      if (i > 0 && p[0] - pts[i - 1][0] > breakMs) out.push([(pts[i - 1][0] + p[0]) / 2, null]);
      out.push(p);
    });
    return out;
  }
  // join returns line a then line b, broken between them when they are
  // more than breakMs apart.
  function join(a, b, breakMs) {
    var x = a[a.length - 1], y = b[0];
    if (x && y && x[1] !== null && y[1] !== null && y[0] - x[0] > breakMs) return a.concat([[(x[0] + y[0]) / 2, null]], b);
    return a.concat(b);
  }
  // appendReading adds p to line data after its newest point, broken from
  // it when more than breakMs later; false when p is not newer.
  function appendReading(data, p, breakMs) {
    var last = data[data.length - 1];
    if (last && last[0] >= p[0]) return false;
    if (last && last[1] !== null && p[0] - last[0] > breakMs) data.push([(last[0] + p[0]) / 2, null]);
    data.push(p);
    return true;
  }
  // lineData returns a line's data for ECharts: its lone points as dots.
  function lineData(data) {
    return data.map(function (p, i) {
      if (p[1] === null) return p;
      var before = i === 0 || data[i - 1][1] === null;
      var after = i === data.length - 1 || data[i + 1][1] === null;
      return before && after ? { value: p, symbol: "circle" } : p;
    });
  }

  // calendarLabels fits the year calendar's month labels to its width: on
  // a phone whole names ran together, so there they are initials, smaller.
  var monthNames = null;
  function calendarLabels(chart) {
    var cal = (chart.getOption().calendar || [])[0];
    if (!cal) return;
    if (!monthNames) monthNames = (cal.monthLabel && cal.monthLabel.nameMap) || null;
    if (!Array.isArray(monthNames)) return;
    var narrow = chart.getWidth() < 560;
    chart.setOption({ calendar: [{ monthLabel: {
      fontSize: narrow ? 10 : 12,
      nameMap: narrow ? monthNames.map(function (m) { return String(m).charAt(0); }) : monthNames
    } }] });
  }

  function watchResize() {
    chartIds.forEach(function (id) {
      var el = document.getElementById(id);
      var chart = chartOf(id);
      if (!el || !chart) return;
      function resized() {
        chart.resize();
        if (id === "year") calendarLabels(chart);
      }
      if (window.ResizeObserver) {
        new ResizeObserver(resized).observe(el.parentElement || el);
      } else {
        window.addEventListener("resize", resized);
      }
    });
  }

  // The live stream.

  var statusEl = document.getElementById("status");
  var statusTextEl = document.getElementById("status-text");
  function setStatus(state) {
    if (!statusEl) return;
    statusEl.classList.toggle("live", state === "live");
    statusEl.classList.toggle("offline", state !== "live");
    statusTextEl.textContent = t("js." + state);
  }

  // stream opens the event stream and calls onReading with each reading:
  // of every meter (meters null), of some ("a,b"), or of none ("": only
  // the heartbeats, for the status light). EventSource reconnects by
  // itself, sending the last event id so that nothing is missed.
  function stream(meters, onReading) {
    if (!window.EventSource) return;
    var url = "/api/v1/stream" + (meters === null ? "" : "?meter=" + encodeURIComponent(meters));
    var es = new EventSource(url);
    es.onopen = function () { setStatus("live"); };
    es.onerror = function () { setStatus(es.readyState === EventSource.CLOSED ? "offline" : "reconnecting"); };
    // The server ended this stream for a newer one of the same session
    // (too many tabs): reconnecting would only end another.
    es.addEventListener("end", function () { es.close(); setStatus("offline"); });
    es.addEventListener("reading", function (ev) {
      var r;
      try {
        r = JSON.parse(ev.data);
      } catch (e) {
        return;
      }
      onReading(r);
    });
    window.addEventListener("pagehide", function () { es.close(); });
  }

  var csrfMeta = document.querySelector('meta[name="csrf-token"]');
  function request(method, url, body) {
    var opts = { method: method, headers: { Accept: "application/json" }, cache: "no-store", credentials: "same-origin" };
    if (csrfMeta && method !== "GET") opts.headers["X-CSRF-Token"] = csrfMeta.content;
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/merge-patch+json";
      opts.body = JSON.stringify(body);
    }
    return fetch(url, opts).then(function (res) {
      return res.json().catch(function () { return {}; }).then(function (j) {
        if (!res.ok) throw new Error((j.error || ("HTTP " + res.status)) + (j.detail ? ": " + j.detail : ""));
        return j;
      });
    });
  }

  // Overview.

  var HOUR_MS = 3600 * 1000;

  // liveLines keeps the overview's chart of the last hour: the hour moves
  // on with the server's clock (data-to: its time when the page was drawn)
  // and the readings that arrive join their meter's line, broken after a
  // silence longer than the meter's break (data-breaks). Readings older
  // than the hour (history a meter replays) stay off it.
  function liveLines(live) {
    var section = live.getDom().closest("section");
    var skew = Number(section.dataset.to) - Date.now();
    if (!isFinite(skew)) skew = 0;
    var breaks = {};
    try {
      breaks = JSON.parse(section.dataset.breaks) || {};
    } catch (e) {
      breaks = {};
    }
    var series = new Map();
    var names = new Map();
    (live.getOption().series || []).forEach(function (o) {
      series.set(o.id, points(o.data));
      names.set(o.id, o.name);
    });
    // The legend names the meters with points in the hour (chart.go): a
    // meter's first reading adds it.
    var legend = ((live.getOption().legend || [])[0] || {}).data || [];
    var dirty = false;
    function draw() {
      var to = Date.now() + skew, from = to - HOUR_MS;
      var opts = [];
      series.forEach(function (data, id) {
        // One point before the hour stays: the line comes in from the left.
        while (data.length > 1 && data[1][0] < from) data.shift();
        opts.push({ id: id, data: lineData(data) });
      });
      live.setOption({ xAxis: [{ min: from, max: to }], series: opts });
    }
    // Redraw at most every 250 ms, however many meters report; the hour
    // moves on every 10 s without them.
    setInterval(function () {
      if (!dirty) return;
      dirty = false;
      draw();
    }, 250);
    setInterval(function () { dirty = true; }, 10000);
    return {
      add: function (r) {
        var data = series.get(r.meter);
        var ms = Date.parse(r.t);
        if (!data || !(ms >= Date.now() + skew - HOUR_MS)) return;
        if (appendReading(data, [ms, r.power_w / 1000], breaks[r.meter] || 0)) dirty = true;
        var name = names.get(r.meter);
        if (name !== undefined && legend.indexOf(name) < 0) {
          legend.push(name);
          live.setOption({ legend: [{ data: legend.slice() }] });
        }
      }
    };
  }

  function overview() {
    var cards = new Map();
    document.querySelectorAll("article.card[data-meter]").forEach(function (el) {
      cards.set(el.dataset.meter, {
        el: el,
        main: el.dataset.main === "true",
        power: el.querySelector(".power"),
        seen: el.querySelector(".seen"),
        read: el.querySelector(".read"),
        badge: el.querySelector(".badge"),
        // heardAt: when the server last received a live reading of it;
        // readAt: when its newest reading was taken (server clock, ms).
        heardAt: Date.parse(el.dataset.heard) || 0,
        readAt: Date.parse(el.dataset.read) || 0,
        silentAfter: Number(el.dataset.silentAfter) || 0,
        watts: Number(el.querySelector(".power").value) || 0
      });
    });
    // The server's clock: reading times and silences are measured on it,
    // not on this browser's, which may be set wrong.
    var summaryEl = document.querySelector(".summary[data-server-now]");
    var skew = summaryEl ? (Date.parse(summaryEl.dataset.serverNow) || Date.now()) - Date.now() : 0;
    function serverNow() { return Date.now() + skew; }
    // A meter's newest reading is its power now while the meter is online
    // and the reading was taken within its silence window, or a minute
    // (store.Meter.PowerNow): readings a meter replays from its buffer,
    // and imported history, are not "now".
    function current(c, now) {
      return c.el.classList.contains("online") && now - c.readAt <= Math.max(c.silentAfter, 60) * 1000;
    }
    var live = chartOf("live");
    var gauge = chartOf("gauge");
    var lines = live ? liveLines(live) : null;
    var reloading = false;
    function reload() {
      if (reloading) return;
      reloading = true;
      location.reload();
    }

    function setOnline(c, online) {
      c.el.classList.toggle("online", online);
      c.el.classList.toggle("offline", !online);
      c.badge.className = "badge " + (online ? "online" : "offline");
      c.badge.textContent = t(online ? "js.online" : "js.offline_meter");
    }

    function sitePower() {
      var sum = 0, n = 0, now = serverNow();
      cards.forEach(function (c) {
        if (c.el.classList.contains("online")) n++;
        var isNow = current(c, now);
        c.el.classList.toggle("not-now", !isNow && c.el.classList.contains("online")); // greyed, as the server draws it
        if (c.main && isNow) sum += c.watts;
      });
      setData(document.getElementById("site-power"), sum, power(sum));
      var oc = document.getElementById("online-count");
      if (oc) oc.textContent = String(n);
      if (gauge) {
        var max = (gauge.getOption().series[0] || {}).max || 1;
        var kw = sum / 1000; // worded by power(), as the card is: rounded once
        var o = { series: [{ data: [{ name: "kW", value: kw }] }] };
        if (kw > max) o.series[0].max = Math.ceil(kw * 1.2);
        gauge.setOption(o);
      }
    }

    stream(null, function (r) {
      if (document.getElementById("empty")) return reload(); // the first meter
      var c = cards.get(r.meter);
      if (!c) return reload(); // a new meter: the server draws its card
      c.watts = r.power_w;
      c.heardAt = serverNow();
      c.readAt = Date.parse(r.t) || 0;
      setData(c.power, r.power_w, power(r.power_w));
      if (c.read) {
        c.read.setAttribute("datetime", r.t);
        c.read.textContent = dateTime(r.t);
      }
      var heard = new Date(c.heardAt).toISOString();
      if (c.seen.tagName !== "TIME") { // "never": it is heard now
        var tm = document.createElement("time");
        tm.className = "seen";
        c.seen.replaceWith(tm);
        c.seen = tm;
      }
      c.seen.setAttribute("datetime", heard);
      c.seen.textContent = dateTime(heard);
      setOnline(c, true);
      if (lines) lines.add(r);
      sitePower();
    });

    // A meter not heard for its silence window (three times its usual
    // interval, at least 10 s) is offline, as the server decides
    // (store.Meter.Status); a reading also ages out of "now".
    setInterval(function () {
      var now = serverNow();
      cards.forEach(function (c) {
        if (!c.silentAfter || !c.el.classList.contains("online")) return;
        if (now - c.heardAt > c.silentAfter * 1000) setOnline(c, false);
      });
      sitePower();
    }, 5000);

    // Today's energy, from the sites' main meters, every minute.
    var summary = document.querySelector(".summary[data-today-from]");
    if (summary && summary.dataset.sites) {
      var from = summary.dataset.todayFrom;
      var sites = summary.dataset.sites.split(",");
      setInterval(function () {
        Promise.all(sites.map(function (s) {
          return request("GET", "/api/v1/sites/" + encodeURIComponent(s) + "/energy?interval=day&from=" + encodeURIComponent(from) +
            "&to=" + encodeURIComponent(new Date(Date.now() + HOUR_MS).toISOString()));
        })).then(function (answers) {
          var kwh = 0;
          answers.forEach(function (a) { kwh += a.total.energy_kwh; });
          setData(document.getElementById("today-kwh"), kwh, energy(kwh));
        }, function () {});
      }, 60000);
    }
  }

  // Meter page.

  function meterPage() {
    var summary = document.querySelector(".summary[data-meter]");
    if (!summary) return;
    var id = summary.dataset.meter;
    var history = chartOf("history");
    var stepEl = document.getElementById("history-step");
    var full = { from: Date.parse(summary.dataset.from), to: Date.parse(summary.dataset.to) };
    // coarse is the line the server drew, broken after silences longer
    // than coarseBreak; readingBreak breaks a line of readings (data-*).
    var coarse = [], coarseBreak = 0, readingBreak = 0;
    if (history) {
      var s0 = (history.getOption().series || [])[0] || {};
      coarse = points(s0.data);
      var hs = history.getDom().closest("section").dataset;
      coarseBreak = Number(hs.breakMs) || 0;
      readingBreak = Number(hs.readingBreakMs) || 0;
    }
    var fine = null; // {from, to, data, breakMs} of the zoomed window
    var atEnd = true;

    function showStep(step) {
      if (stepEl) stepEl.textContent = t("js.step") + " " + t("js.step_" + step);
    }

    function draw() {
      var data = coarse;
      if (fine) {
        var gap = Math.max(coarseBreak, fine.breakMs);
        data = join(join(coarse.filter(function (p) { return p[0] < fine.from; }), fine.data, gap),
          coarse.filter(function (p) { return p[0] >= fine.to; }), gap);
      }
      history.setOption({ series: [{ data: lineData(data) }] });
    }

    // Zooming asks the API for the window at step=auto: the finest
    // resolution that fits, down to every reading.
    var zoomTimer = null;
    var asked = 0;
    function onZoom() {
      var dz = history.getOption().dataZoom[0];
      var span = full.to - full.from;
      var from = full.from + span * dz.start / 100;
      var to = full.from + span * dz.end / 100;
      atEnd = dz.end >= 99.9;
      var n = ++asked;
      var url = "/api/v1/meters/" + encodeURIComponent(id) + "/readings?step=auto&max_points=800&from=" +
        encodeURIComponent(new Date(from).toISOString()) + "&to=" + encodeURIComponent(new Date(to).toISOString());
      request("GET", url).then(function (body) {
        if (n !== asked) return; // a newer zoom won
        // power_w: a reading's power, or a rollup's power to draw (null
        // where the meter was silent: left out, the line breaks there).
        var pts = (body.points || []).filter(function (p) {
          return p.power_w !== null && p.power_w !== undefined;
        }).map(function (p) {
          return [Date.parse(p.t), p.power_w / 1000];
        });
        var breakMs = breakFor(readingBreak, STEP_MS[body.step] || 0, pts);
        fine = { from: from, to: to, data: withBreaks(pts, breakMs), breakMs: breakMs };
        showStep(body.step);
        draw();
      }, function () {});
    }
    if (history) {
      // The slider's data shadow spreads the points over its whole width,
      // whatever their times: under a selection of a few minutes of a week
      // it drew the week's data. No shadow is truer than that one.
      history.setOption({ dataZoom: [{}, { showDataShadow: false }] });
      history.on("datazoom", function () {
        clearTimeout(zoomTimer);
        zoomTimer = setTimeout(onZoom, 300);
      });
      // The server opened the chart zoomed to a meter's data that covers
      // a small part of the week: fetch that part finer now.
      var dz0 = (history.getOption().dataZoom || [])[0];
      if (dz0 && (dz0.start > 0 || dz0.end < 100)) onZoom();
    }

    // A reading taken more than its silence window (or a minute) before
    // now is history the meter replays, not its power now
    // (store.Meter.PowerNow); ages are on the server's clock.
    var skew = (Date.parse(summary.dataset.serverNow) || Date.now()) - Date.now();
    var nowWindow = Math.max(Number(summary.dataset.silentAfter) || 0, 60) * 1000;
    var readEl = summary.querySelector(".read");
    var seenEl = summary.querySelector(".seen");
    stream(id, function (r) {
      if (Date.now() + skew - Date.parse(r.t) <= nowWindow) {
        setData(document.getElementById("meter-power"), r.power_w, power(r.power_w));
      }
      if (readEl && Date.parse(r.t) >= Date.parse(readEl.getAttribute("datetime"))) {
        readEl.setAttribute("datetime", r.t);
        readEl.textContent = dateTime(r.t);
      }
      if (seenEl) { // heard now
        var heard = new Date(Date.now() + skew).toISOString();
        if (seenEl.tagName !== "TIME") {
          var tm = document.createElement("time");
          tm.className = "seen";
          seenEl.replaceWith(tm);
          seenEl = tm;
        }
        seenEl.setAttribute("datetime", heard);
        seenEl.textContent = dateTime(heard);
      }
      var badge = document.getElementById("meter-status");
      if (badge) {
        badge.className = "badge online";
        badge.textContent = t("js.online");
      }
      if (!history || !atEnd) return;
      var ms = Date.parse(r.t);
      if (ms > full.to) {
        full.to = ms + 60000;
        history.setOption({ xAxis: [{ max: full.to }] });
      }
      if (!appendReading(fine ? fine.data : coarse, [ms, r.power_w / 1000], fine ? fine.breakMs : coarseBreak)) return;
      if (fine) fine.to = Math.max(fine.to, ms + 1);
      draw();
    });

    settingsForms();
    var del = document.querySelector("form.delete-meter");
    if (del) {
      del.addEventListener("submit", function (ev) {
        ev.preventDefault();
        if (!window.confirm(t("js.confirm_delete"))) return;
        request("DELETE", "/api/v1/meters/" + encodeURIComponent(del.dataset.meter)).then(function () {
          location.assign("/meters");
        }, function (err) {
          window.alert(t("js.delete_failed") + " " + err.message);
        });
      });
    }
  }

  // settingsForms sends a meter's settings as a JSON merge patch.
  function settingsForms() {
    document.querySelectorAll("form.meter-settings").forEach(function (form) {
      form.addEventListener("submit", function (ev) {
        ev.preventDefault();
        var f = form.elements;
        var num = function (el) { return el.value.trim() === "" ? null : Number(el.value); };
        var patch = {
          name: f.name.value.trim() || null,
          parent: f.parent.value || null,
          tags: f.tags.value.split(",").map(function (s) { return s.trim(); }).filter(Boolean),
          expected_min_w: num(f.expected_min_w),
          expected_max_w: num(f.expected_max_w),
          critical: f.critical.checked
        };
        // A sub-meter is in its parent's site: the site goes only with no parent.
        if (!f.site.disabled && !f.parent.value) patch.site = f.site.value.trim() || null;
        var result = form.querySelector(".result");
        result.textContent = "";
        result.classList.remove("bad");
        request("PATCH", "/api/v1/meters/" + encodeURIComponent(form.dataset.meter), patch).then(function () {
          result.textContent = t("js.saved");
          setTimeout(function () { location.reload(); }, 400);
        }, function (err) {
          result.textContent = t("js.save_failed") + " " + err.message;
          result.classList.add("bad");
        });
      });
    });
  }

  // accessPage: the forms add users, tokens and devices through the API,
  // and show a new token or device password once; the buttons remove them.
  function accessPage() {
    document.querySelectorAll("form.access-form").forEach(function (form) {
      form.addEventListener("submit", function (ev) {
        ev.preventDefault();
        var f = form.elements, kind = form.dataset.kind, body = { name: f.name.value.trim() };
        if (kind === "user") {
          body.password = f.password.value;
          body.role = f.role.value;
        } else if (kind === "token") {
          body.role = f.role.value;
          var days = f.expires_days.value.trim();
          if (days !== "") body.expires = new Date(Date.now() + Number(days) * 86400 * 1000).toISOString();
        } else if (kind === "device") {
          // Topic filters, comma-separated; none: the device's own topics.
          ["publish", "subscribe"].forEach(function (k) {
            var list = f[k].value.split(",").map(function (s) { return s.trim(); }).filter(Boolean);
            if (list.length) body[k] = list;
          });
        }
        var result = form.querySelector(".result"), secret = form.querySelector(".secret");
        result.textContent = "";
        result.classList.remove("bad");
        request("POST", form.dataset.post, body).then(function (j) {
          result.textContent = t("js.added");
          if (kind === "user") {
            setTimeout(function () { location.reload(); }, 400);
            return;
          }
          var value = secret.querySelector(".value");
          value.textContent = "";
          if (kind === "token") {
            value.textContent = j.token;
          } else {
            Object.keys(j.settings).sort().forEach(function (k) {
              var dt = document.createElement("dt"), dd = document.createElement("dd");
              dt.textContent = k;
              dd.textContent = j.settings[k];
              value.appendChild(dt);
              value.appendChild(dd);
            });
          }
          secret.hidden = false;
          form.reset();
        }, function (err) {
          result.textContent = t("js.add_failed") + " " + err.message;
          result.classList.add("bad");
        });
      });
    });
    // A secret leaves the screen once copied, and the page shows the new
    // token or device in its list; none stays in the page when it is left.
    document.querySelectorAll(".secret-done").forEach(function (btn) {
      btn.addEventListener("click", function () {
        var secret = btn.closest(".secret");
        secret.querySelector(".value").textContent = "";
        secret.hidden = true;
        location.reload();
      });
    });
    window.addEventListener("pagehide", function () {
      document.querySelectorAll(".secret .value").forEach(function (el) { el.textContent = ""; });
    });
    document.querySelectorAll("button[data-delete]").forEach(function (btn) {
      btn.addEventListener("click", function () {
        if (!window.confirm(t("js.confirm_remove"))) return;
        request("DELETE", btn.dataset.delete + encodeURIComponent(btn.dataset.name)).then(function () {
          var row = btn.closest("tr");
          if (row) row.remove();
        }, function (err) {
          window.alert(t("js.remove_failed") + " " + err.message);
        });
      });
    });
  }

  // The settings page's rule form shows the condition fields of the kind
  // chosen (labels with data-kinds); without JavaScript it shows them all.
  function ruleForm() {
    var kind = document.getElementById("rule-kind");
    if (!kind) return;
    function show() {
      document.querySelectorAll("#rule-form [data-kinds]").forEach(function (el) {
        el.hidden = el.dataset.kinds.split(" ").indexOf(kind.value) < 0;
      });
    }
    kind.addEventListener("change", show);
    show();
  }

  // Every page: live status, theme, sizes, times and numbers.
  localNumbers();
  ["live", "history", "day"].forEach(function (id) {
    var chart = chartOf(id);
    if (chart) localTimes(chart);
  });
  document.querySelectorAll("time[datetime]").forEach(function (el) {
    var s = dateTime(el.getAttribute("datetime"));
    if (s !== "–") el.textContent = s;
  });
  var yearChart = chartOf("year");
  if (yearChart) calendarLabels(yearChart);
  applyTheme();
  var dark = window.matchMedia ? window.matchMedia("(prefers-color-scheme: dark)") : null;
  if (dark && dark.addEventListener) dark.addEventListener("change", applyTheme);
  watchResize();

  if (page === "overview") {
    overview();
  } else if (page === "meter") {
    meterPage();
  } else {
    if (page === "access") accessPage();
    if (page === "configure") ruleForm();
    // Forms that undo something (deleting a rule, removing the saved
    // tariff) ask first; without JavaScript they post at once.
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (ev) {
        if (!window.confirm(form.dataset.confirm)) ev.preventDefault();
      });
    });
    settingsForms();
    // The status light: is the server there? (Not before a log-in: the
    // login and setup pages have no light, and the stream needs one.)
    if (statusEl) stream("", function () {});
  }
})();
