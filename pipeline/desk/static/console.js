/* The listening console's script: charts, "load more" in place, and the live parts.
 *
 * Every page works without it. It draws the charts from the JSON the page embeds (uPlot),
 * fetches further pages and new mentions as HTML the server rendered (so dates, numbers and
 * words stay the server's, in the reader's language), and polls the store's freshness.
 * No inline script: the desk's Content-Security-Policy allows scripts from itself only.
 */
(function () {
  "use strict";
  document.documentElement.classList.add("js");
  var body = document.body;
  var refreshMs = Number(body.dataset.refreshMs) || 10000;
  var stopped = false;

  function sessionExpired() {
    if (stopped) { return; }
    stopped = true;
    var status = document.getElementById("status");
    if (status) {
      status.innerHTML = "";
      var p = document.createElement("p");
      p.className = "alert stale";
      p.dataset.state = "expired";
      p.textContent = body.dataset.sessionExpired;
      status.appendChild(p);
    }
  }

  function fetchHtml(url) {
    return fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) {
        if (response.status === 401) { sessionExpired(); throw new Error("session expired"); }
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.text().then(function (text) {
          return { text: text, next: response.headers.get("x-next-cursor") || "" };
        });
      });
  }

  function itemsOf(html) {
    var template = document.createElement("template");
    template.innerHTML = html;
    return Array.prototype.filter.call(template.content.children, function (node) {
      return node.matches("li[data-id]");
    });
  }

  /* -- period picker: the custom dates only when "custom" is chosen ------------------- */
  document.querySelectorAll("select[data-period]").forEach(function (select) {
    var custom = select.parentElement.querySelector("[data-custom-period]");
    function sync() { if (custom) { custom.hidden = select.value !== "custom"; } }
    select.addEventListener("change", sync);
    sync();
  });

  /* -- on a phone the explorer's filters fold away unless one is in use ----------------- */
  if (window.matchMedia("(max-width: 600px)").matches) {
    document.querySelectorAll("details[data-narrow-closed]").forEach(function (details) {
      var inUse = Array.prototype.some.call(details.querySelectorAll("select"), function (select) {
        return select.selectedIndex > 0 && select.name !== "period";
      });
      if (!inUse) { details.open = false; }
    });
  }

  /* -- charts ------------------------------------------------------------------------- */
  /* tick labels: the time of day, and the date under the first tick of each day; whole
   * days (ticks a day or more apart) show the date alone */
  function tickLabels(locale, tz) {
    var day = new Intl.DateTimeFormat(locale, { day: "numeric", month: "short", timeZone: tz });
    var time = new Intl.DateTimeFormat(locale, { hour: "2-digit", minute: "2-digit", timeZone: tz });
    return function (u, splits, axis, space, increment) {
      var previous = null;
      return splits.map(function (split) {
        var moment = new Date(split * 1000), date = day.format(moment);
        if (increment >= 86400) { return date; }
        var label = date !== previous ? time.format(moment) + "\n" + date : time.format(moment);
        previous = date;
        return label;
      });
    };
  }

  /* moments worth a line across a chart (an incident opening, resolving), with a label */
  function drawMarks(u, marks) {
    var ctx = u.ctx;
    marks.forEach(function (mark) {
      var x = Math.round(u.valToPos(mark.at, "x", true));
      if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) { return; }
      ctx.save();
      ctx.strokeStyle = "#6b4a00";
      ctx.fillStyle = "#6b4a00";
      ctx.lineWidth = 1.5 * devicePixelRatio;
      ctx.setLineDash([5 * devicePixelRatio, 4 * devicePixelRatio]);
      ctx.beginPath();
      ctx.moveTo(x, u.bbox.top);
      ctx.lineTo(x, u.bbox.top + u.bbox.height);
      ctx.stroke();
      ctx.font = (12 * devicePixelRatio) + "px system-ui, sans-serif";
      ctx.fillText(mark.label, x + 4 * devicePixelRatio, u.bbox.top + 12 * devicePixelRatio);
      ctx.restore();
    });
  }

  function drawChart(holder) {
    var source = document.getElementById(holder.dataset.chart);
    if (!source || typeof uPlot === "undefined") { return; }
    var data = JSON.parse(source.textContent);
    var locale = data.locale, tz = data.tz;
    var numbers = data.shares
      ? new Intl.NumberFormat(locale, { style: "percent", maximumFractionDigits: 1 })
      : new Intl.NumberFormat(locale, { maximumFractionDigits: 0 });
    var full = new Intl.DateTimeFormat(locale, {
      day: "numeric", month: "short", hour: "2-digit", minute: "2-digit", timeZone: tz });
    var series = [{ value: function (u, v) { return v == null ? "" : full.format(new Date(v * 1000)); } }];
    data.series.forEach(function (line) {
      series.push({
        label: line.label, stroke: line.colour, width: 2, dash: line.dashed ? [6, 4] : undefined,
        points: { show: data.x.length < 40 },
        value: function (u, v) { return v == null ? "" : numbers.format(v); }
      });
    });
    var options = {
      width: Math.max(holder.clientWidth, 240), height: 220, series: series,
      legend: { live: false },  /* the figures are in the table under the chart */
      scales: { x: { time: true }, y: { range: function (u, min, max) {
        return data.shares ? [0, Math.min(1, Math.max(max * 1.1, 0.1))] : [0, Math.max(max * 1.1, 1)];
      } } },
      axes: [
        { values: tickLabels(locale, tz), size: 44, stroke: "#505050", grid: { stroke: "#e3e6ea" } },
        { values: function (u, splits) { return splits.map(function (v) { return numbers.format(v); }); },
          size: 56, stroke: "#505050", grid: { stroke: "#e3e6ea" } }
      ],
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1000), tz); },
      hooks: { draw: [function (u) { drawMarks(u, data.marks || []); }] }
    };
    var values = [data.x].concat(data.series.map(function (line) { return line.values; }));
    var plot = new uPlot(options, values, holder);
    if (typeof ResizeObserver !== "undefined") {
      new ResizeObserver(function () {
        var width = Math.max(holder.clientWidth, 240);
        if (width !== plot.width) { plot.setSize({ width: width, height: 220 }); }
      }).observe(holder);
    }
  }
  document.querySelectorAll("[data-chart]").forEach(drawChart);

  /* -- load more ---------------------------------------------------------------------- */
  document.querySelectorAll("a[data-load-more]").forEach(function (link) {
    link.addEventListener("click", function (event) {
      event.preventDefault();
      var list = document.querySelector("ul[data-live-list]");
      var url = link.dataset.base + "&cursor=" + encodeURIComponent(link.dataset.cursor);
      link.setAttribute("aria-busy", "true");
      fetchHtml(url).then(function (answer) {
        var seen = seenIds(list);
        itemsOf(answer.text).forEach(function (item) {
          if (!seen[item.dataset.id]) { list.appendChild(item); }
        });
        link.removeAttribute("aria-busy");
        if (answer.next) { link.dataset.cursor = answer.next; } else { link.parentElement.remove(); }
      }).catch(function () { link.removeAttribute("aria-busy"); });
    });
  });

  function seenIds(list) {
    var seen = {};
    list.querySelectorAll("li[data-id]").forEach(function (item) { seen[item.dataset.id] = true; });
    return seen;
  }

  /* -- live lists: new mentions at the top, without a reload --------------------------- */
  var announcer = document.createElement("p");
  announcer.className = "visually-hidden";
  announcer.setAttribute("aria-live", "polite");
  body.appendChild(announcer);

  function pollList(list) {
    if (stopped) { return; }
    var newest = list.querySelector("li[data-created]");
    var url = list.dataset.liveList;
    if (newest) { url += "&newer_than=" + encodeURIComponent(newest.dataset.created); }
    fetchHtml(url).then(function (answer) {
      var seen = seenIds(list);
      var fresh = itemsOf(answer.text).filter(function (item) { return !seen[item.dataset.id]; });
      fresh.reverse().forEach(function (item) {
        item.classList.add("is-new");
        list.insertBefore(item, list.firstChild);
      });
      var keep = Number(list.dataset.keep) || 0;
      while (keep && list.children.length > keep) { list.removeChild(list.lastElementChild); }
      if (fresh.length) {
        var empty = list.parentElement.querySelector("[data-empty]");
        if (empty) { empty.remove(); }
        var template = fresh.length === 1 ? body.dataset.newMentionsOne : body.dataset.newMentionsOther;
        announcer.textContent = template.replace("{count}", fresh.length);
      }
    }).catch(function () { /* the status line says when the store is down */ })
      .then(function () { if (!stopped) { setTimeout(function () { pollList(list); }, refreshMs); } });
  }
  document.querySelectorAll("ul[data-live-list][data-live='on']").forEach(function (list) {
    setTimeout(function () { pollList(list); }, refreshMs);
  });

  /* -- live incident lists and the navigation's count of open incidents ----------------- */
  function pollIncidents(holder) {
    if (stopped) { return; }
    fetchHtml(holder.dataset.liveIncidents).then(function (answer) {
      if (holder.innerHTML.trim() !== answer.text.trim()) { holder.innerHTML = answer.text; }
    }).catch(function () {})
      .then(function () { if (!stopped) { setTimeout(function () { pollIncidents(holder); }, refreshMs); } });
  }
  document.querySelectorAll("[data-live-incidents]").forEach(function (holder) {
    setTimeout(function () { pollIncidents(holder); }, refreshMs);
  });

  /* -- the store's freshness ----------------------------------------------------------- */
  var status = document.getElementById("status");
  function pollStatus() {
    if (stopped) { return; }
    fetchHtml(status.dataset.statusSrc).then(function (answer) {
      status.innerHTML = answer.text;
      var count = status.querySelector("[data-open-count]");
      var badge = document.querySelector("[data-open-incidents]");
      if (badge && count) {
        badge.textContent = count.dataset.openCount;
        badge.hidden = count.dataset.openCount === "0";
      }
    }).catch(function () {})
      .then(function () { if (!stopped) { setTimeout(pollStatus, refreshMs); } });
  }
  if (status) { pollStatus(); }
})();
