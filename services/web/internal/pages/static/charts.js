// Draws the target page's charts with uPlot from the JSON the server
// embedded in <script type="application/json" id="chart-data">: no inline
// script, so the page's CSP needs no 'unsafe-inline'. Each chart's box
// gets data-rendered="true" once drawn (the browser tests look for it).
(function () {
  "use strict";
  var el = document.getElementById("chart-data");
  if (!el || typeof uPlot === "undefined") {
    return;
  }
  var d = JSON.parse(el.textContent);
  var colors = ["#2e7dd7", "#e07a1f", "#d7373f", "#2e9d3a", "#8e44ad", "#7f8c8d", "#16a085", "#c0392b"];

  function draw(id, unit, names, columns, from, opts) {
    var box = document.getElementById(id);
    if (!box || !columns || columns.length === 0 || columns[0].length === 0) {
      return;
    }
    var series = [{}];
    for (var i = 0; i < names.length; i++) {
      var s = { label: names[i], stroke: colors[i % colors.length], width: 1.5, spanGaps: false };
      if (opts && opts.bars && i > 0) {
        s.paths = uPlot.paths.bars({ size: [0.9, 12] });
        s.fill = colors[i % colors.length];
      }
      series.push(s);
    }
    new uPlot({
      width: Math.max(320, box.clientWidth - 16),
      height: 240,
      series: series,
      axes: [{}, { label: unit, size: 60 }],
      scales: { x: { time: true, auto: false, range: function () { return [from - 1800, d.to + 1800]; } } }
    }, columns, box);
    box.dataset.rendered = "true";
  }

  draw("chart-latency", "ms", ["p50", "p95", "p99"], d.latency, d.from);
  draw("chart-phases", "ms", ["DNS", "connect", "TLS", "TTFB"], d.phases, d.phases_from);
  draw("chart-checks", "checks", d.check_series, d.checks, d.from, { bars: true });
})();
