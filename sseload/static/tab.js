// sseload's "SSE streams" tab in Locust's web UI: under Locust's table of live numbers, a link to
// the run's report (a new tab) and live charts of the run's history (sseload/live.json, a point
// every 2 s kept by the process that aggregates, so a reload shows the whole run).
(function () {
  "use strict";
  var POLL_MS = 2000;
  var charts = {};
  var CHARTS = [];  // from live.json: sseload.webui.chart_specs

  function onTab() {
    return new URLSearchParams(window.location.search).get("tab") === "sseload";
  }

  function ourTable() {
    var tables = document.querySelectorAll("table");
    for (var i = 0; i < tables.length; i++) {
      var heads = Array.prototype.map.call(tables[i].querySelectorAll("th"), function (th) { return th.textContent; });
      if (heads.length === 2 && heads[0] === "Metric" && heads[1] === "Value") return tables[i];
    }
    return null;
  }

  function panel(data) {
    var box = document.getElementById("sseload-live");
    if (box) return box;
    CHARTS = data.charts;
    var table = ourTable();
    if (!table) return null;
    var anchor = table.closest(".MuiTableContainer-root") || table;
    box = document.createElement("div");
    box.id = "sseload-live";
    box.style.margin = "16px 0";
    var link = document.createElement("a");
    link.id = "sseload-report";
    link.href = data.report;
    link.target = "_blank";
    link.rel = "noopener";
    link.textContent = "Open the run's report (new tab)";
    link.style.fontSize = "1.1em";
    box.appendChild(link);
    var grid = document.createElement("div");
    grid.style.display = "grid";
    grid.style.gridTemplateColumns = "repeat(auto-fill, minmax(480px, 1fr))";
    grid.style.gap = "12px";
    grid.style.marginTop = "12px";
    CHARTS.forEach(function (c) {
      var div = document.createElement("div");
      div.id = "sseload-chart-" + c.id;
      div.className = "sseload-chart";
      div.style.height = "280px";
      div.style.display = c.tokens ? "none" : "block";
      grid.appendChild(div);
    });
    box.appendChild(grid);
    anchor.parentNode.insertBefore(box, anchor.nextSibling);
    Object.keys(charts).forEach(function (k) { charts[k].dispose(); });
    charts = {};
    return box;
  }

  function option(c, history) {
    var series;
    if (c.outcomes) {
      var names = {};
      history.forEach(function (p) { Object.keys(p.outcomes || {}).forEach(function (k) { names[k] = 1; }); });
      series = Object.keys(names).sort().map(function (name) {
        return {name: name, type: "line", stack: "outcomes", areaStyle: {}, showSymbol: false, step: "end",
                color: c.colours[name] || null,
                data: history.map(function (p) { return [p.t * 1000, (p.outcomes || {})[name] || 0]; })};
      });
    } else {
      series = c.series.map(function (s) {
        return {name: s[1], type: "line", showSymbol: false, color: s[2], yAxisIndex: s[3] || 0,
                data: history.map(function (p) { return [p.t * 1000, p[s[0]]]; })};
      });
    }
    var yAxis = [{type: "value", name: c.unit, scale: false}];
    if (c.right) yAxis.push({type: "value", name: c.right});
    return {
      title: {text: c.title, left: "center", textStyle: {fontSize: 14}},
      tooltip: {trigger: "axis"},
      legend: {top: 24, type: "scroll"},
      grid: {top: 64, left: 60, right: 50, bottom: 56},
      xAxis: {type: "time"},
      yAxis: yAxis,
      dataZoom: [{type: "inside"}, {type: "slider", height: 16, bottom: 8}],
      animation: false,
      series: series
    };
  }

  function draw(data) {
    var box = panel(data);
    if (!box || typeof echarts === "undefined") return;
    CHARTS.forEach(function (c) {
      var div = document.getElementById("sseload-chart-" + c.id);
      if (c.tokens) div.style.display = data.tokens ? "block" : "none";
      if (div.style.display === "none") return;
      var chart = charts[c.id];
      if (!chart) chart = charts[c.id] = echarts.init(div);
      chart.setOption(option(c, data.history), {replaceMerge: ["series"]});
    });
  }

  function poll() {
    if (!onTab()) return;
    fetch("./sseload/live.json").then(function (r) { return r.json(); }).then(draw).catch(function () {});
  }

  window.addEventListener("resize", function () {
    Object.keys(charts).forEach(function (k) { charts[k].resize(); });
  });
  setInterval(poll, POLL_MS);
  document.addEventListener("click", function () { setTimeout(poll, 300); });
  poll();
})();
