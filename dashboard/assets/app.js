// Vatio dashboard: keeps the server-rendered page current by polling the JSON
// API of the same origin. Plain JavaScript, no build step, no framework.
//
// The server renders a card per meter (article.card[data-meter][data-from])
// and the go-echarts chart in #power; this script finds the chart's ECharts
// instance with echarts.getInstanceByDom, appends new readings to it, adds
// cards and series for new meters, and shows whether polling works.
(function () {
  "use strict";

  var POLL_MS = 2000;
  var REQUEST_TIMEOUT_MS = 10000;
  // MAX_POINTS is how many readings a series keeps, as the server renders
  // (chartPoints in chart.go).
  var MAX_POINTS = 500;
  var READINGS_LIMIT = 1000;
  // A meter silent for longer is shown as stale.
  var STALE_MS = 5 * 60 * 1000;

  var cardsEl = document.getElementById("cards");
  var statusEl = document.getElementById("status");
  var statusTextEl = document.getElementById("status-text");
  var chartEl = document.getElementById("power");
  var chart = chartEl && window.echarts ? window.echarts.getInstanceByDom(chartEl) : null;

  // cards maps a meter id to its card's elements.
  var cards = new Map();
  // series maps a meter id to its chart state: data ([Unix ms, kW] oldest
  // first), from (the newest reading's time as the API wrote it) and key
  // (the same time, comparable: see timeKey).
  var series = new Map();
  var reloading = false;

  // formatPower formats watts like the server does (formatPower in
  // dashboard.go): W below 1 kW, kW below 1 MW, MW above.
  function formatPower(powerW) {
    var a = Math.abs(powerW);
    if (a < 0.5) return "0 W";
    if (a < 999.5) return powerW.toFixed(0) + " W";
    if (a < 999995) return (powerW / 1e3).toFixed(2) + " kW";
    return (powerW / 1e6).toFixed(2) + " MW";
  }

  // timeKey turns an RFC 3339 time with up to nanoseconds into a string
  // that sorts like the time: JavaScript dates keep only milliseconds.
  function timeKey(t) {
    var m = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$/.exec(t || "");
    if (!m) return "";
    var frac = ((m[2] || "") + "000000000").slice(0, 9);
    var ms = Date.parse(m[1] + m[3]) + Number(frac.slice(0, 3));
    if (isNaN(ms)) return "";
    return String(ms).padStart(15, "0") + frac.slice(3);
  }

  function formatSeen(t) {
    var d = new Date(t);
    if (isNaN(d.getTime())) return t;
    var now = new Date();
    return d.toDateString() === now.toDateString() ? d.toLocaleTimeString() : d.toLocaleString();
  }

  // Cards.

  function adoptCard(el) {
    var c = {
      el: el,
      power: el.querySelector(".power"),
      seen: el.querySelector(".seen")
    };
    cards.set(el.dataset.meter, c);
    return c;
  }

  // newCard builds the same markup as page.html, with text nodes only.
  function newCard(id) {
    var el = document.createElement("article");
    el.className = "card";
    el.dataset.meter = id;
    var h = document.createElement("h3");
    h.className = "card-id";
    h.textContent = id;
    var p = document.createElement("p");
    p.className = "card-power";
    var power = document.createElement("data");
    power.className = "power";
    p.appendChild(power);
    var s = document.createElement("p");
    s.className = "card-seen";
    s.appendChild(document.createTextNode("Last seen "));
    var seen = document.createElement("time");
    seen.className = "seen";
    s.appendChild(seen);
    el.appendChild(h);
    el.appendChild(p);
    el.appendChild(s);
    // Keep the cards sorted by id, as the server renders them.
    var next = null;
    cards.forEach(function (c, other) {
      if (other > id && (next === null || other < next.dataset.meter)) next = c.el;
    });
    cardsEl.insertBefore(el, next);
    return adoptCard(el);
  }

  function showSeen(c, t) {
    c.seen.setAttribute("datetime", t);
    c.seen.textContent = formatSeen(t);
    var age = Date.now() - new Date(t).getTime();
    c.el.classList.toggle("stale", age > STALE_MS);
  }

  function updateCard(m) {
    var c = cards.get(m.id) || newCard(m.id);
    c.power.value = String(m.power_w);
    c.power.textContent = formatPower(m.power_w);
    showSeen(c, m.last_seen);
  }

  // Chart.

  function seriesOption(id, s) {
    // A lone reading has no line to draw: show it as a point (as chart.go).
    return { id: id, name: id, type: "line", showSymbol: s.data.length < 2, data: s.data };
  }

  function adoptSeries() {
    var opt = chart.getOption();
    (opt.series || []).forEach(function (o) {
      var id = o.id || o.name;
      var card = cards.get(id);
      var from = card ? card.el.dataset.from : "";
      series.set(id, {
        data: (o.data || []).map(function (d) { return Array.isArray(d) ? d : d.value; }),
        from: from,
        key: timeKey(from),
        dirty: false
      });
    });
  }

  function pollReadings(m) {
    var s = series.get(m.id);
    if (!s) {
      // A meter new since the page was rendered: take it from its start.
      s = { data: [], from: m.first, key: "", dirty: true };
      series.set(m.id, s);
    } else if (s.from === m.last) {
      return null; // Nothing newer than what the chart has.
    } else if (!s.from) {
      s.from = m.first;
    }
    var url = "/api/v1/meters/" + encodeURIComponent(m.id) + "/readings?from=" +
      encodeURIComponent(s.from) + "&step=raw&limit=" + READINGS_LIMIT;
    return getJSON(url).then(function (body) {
      (body.points || []).forEach(function (p) {
        // from is inclusive: the reading at from is already on the chart.
        var key = timeKey(p.t);
        if (key === "" || key <= s.key) return;
        s.data.push([Number(key.slice(0, 15)), p.power_w / 1000]);
        s.from = p.t;
        s.key = key;
        s.dirty = true;
      });
      if (s.data.length > MAX_POINTS) s.data.splice(0, s.data.length - MAX_POINTS);
    });
  }

  function redraw() {
    var changed = [];
    series.forEach(function (s, id) {
      if (s.dirty) changed.push(seriesOption(id, s));
      s.dirty = false;
    });
    if (changed.length > 0) chart.setOption({ series: changed });
  }

  // applyTheme gives the chart the page's colours (app.css), light or dark.
  function applyTheme() {
    var css = getComputedStyle(document.documentElement);
    var fg = css.getPropertyValue("--fg").trim();
    var muted = css.getPropertyValue("--muted").trim();
    var grid = css.getPropertyValue("--grid").trim();
    if (!fg || !muted || !grid) return; // app.css did not load: keep ECharts' colours.
    var axis = {
      nameTextStyle: { color: muted },
      axisLabel: { color: muted },
      axisLine: { lineStyle: { color: grid } },
      splitLine: { lineStyle: { color: grid } }
    };
    chart.setOption({
      backgroundColor: "transparent",
      textStyle: { color: fg },
      legend: { textStyle: { color: fg }, pageTextStyle: { color: fg } },
      xAxis: axis,
      yAxis: axis,
      dataZoom: [{}, { borderColor: grid, textStyle: { color: muted } }]
    });
  }

  // Polling.

  function getJSON(url) {
    var ctl = new AbortController();
    var timer = setTimeout(function () { ctl.abort(); }, REQUEST_TIMEOUT_MS);
    return fetch(url, { headers: { Accept: "application/json" }, cache: "no-store", signal: ctl.signal })
      .then(function (res) {
        if (!res.ok) throw new Error(url + ": HTTP " + res.status);
        return res.json();
      })
      .finally(function () { clearTimeout(timer); });
  }

  function setStatus(ok, err) {
    statusEl.classList.toggle("live", ok);
    statusEl.classList.toggle("offline", !ok);
    statusTextEl.textContent = ok ? "live" : "offline";
    statusEl.title = ok ? "Updated " + new Date().toLocaleTimeString() : String(err || "");
  }

  function poll() {
    if (document.hidden) {
      setTimeout(poll, POLL_MS);
      return;
    }
    getJSON("/api/v1/meters")
      .then(function (body) {
        var meters = body.meters || [];
        // The empty page has no chart: the first meter needs a new page.
        if (meters.length > 0 && document.getElementById("empty")) {
          reloading = true;
          location.reload();
          return null;
        }
        meters.forEach(updateCard);
        if (!chart) return null;
        return Promise.all(meters.map(pollReadings)).then(redraw);
      })
      .then(function () { setStatus(true); }, function (err) { setStatus(false, err); })
      .then(function () { if (!reloading) setTimeout(poll, POLL_MS); });
  }

  document.querySelectorAll("article.card[data-meter]").forEach(function (el) {
    var c = adoptCard(el);
    showSeen(c, c.seen.getAttribute("datetime"));
  });

  if (chart) {
    adoptSeries();
    applyTheme();
    var dark = window.matchMedia("(prefers-color-scheme: dark)");
    if (dark.addEventListener) dark.addEventListener("change", applyTheme);
    if (window.ResizeObserver) {
      new ResizeObserver(function () { chart.resize(); }).observe(chartEl);
    } else {
      window.addEventListener("resize", function () { chart.resize(); });
    }
  }

  poll();
})();
