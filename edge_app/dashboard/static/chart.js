// A small line chart on a <canvas>: trays counted (completed bins + the bin being filled) per line over time.
// Drawn by hand so the dashboard ships without any build step or third-party bundle.
"use strict";

const CHART_COLOURS = ["#2864c8", "#1f9d55", "#d98a00", "#b83dba", "#d64545", "#138a8a"];

function niceStep(range, ticks) {
  const raw = range / Math.max(1, ticks);
  const mag = Math.pow(10, Math.floor(Math.log10(raw || 1)));
  for (const m of [1, 2, 5, 10]) if (m * mag >= raw) return m * mag;
  return 10 * mag;
}

// series: {line: [{t, total}]} (t in UNIX seconds); minutes: the window shown, ending now.
function drawChart(canvas, series, minutes) {
  const dpr = window.devicePixelRatio || 1;
  const width = canvas.clientWidth, height = canvas.clientHeight || 240;
  canvas.width = width * dpr; canvas.height = height * dpr;
  const ctx = canvas.getContext("2d");
  ctx.scale(dpr, dpr);
  ctx.clearRect(0, 0, width, height);
  const pad = {l: 48, r: 12, t: 10, b: 24};
  // the window ends now and spans `minutes`, or less when the app has not been counting that long
  const now = Date.now() / 1000;
  let first = now;
  for (const pts of Object.values(series)) if (pts.length) first = Math.min(first, pts[0].t);
  const t0 = Math.max(now - minutes * 60, Math.min(first, now - 60));
  let ymax = 1;
  for (const pts of Object.values(series)) for (const p of pts) if (p.t >= t0) ymax = Math.max(ymax, p.total);
  const ystep = niceStep(ymax, 4);
  ymax = Math.ceil(ymax / ystep) * ystep;
  const x = t => pad.l + (t - t0) / (now - t0) * (width - pad.l - pad.r);
  const y = v => height - pad.b - v / ymax * (height - pad.t - pad.b);

  ctx.font = "11px system-ui, sans-serif";
  ctx.strokeStyle = "#e3e7ec"; ctx.fillStyle = "#6b7686"; ctx.lineWidth = 1;
  ctx.textAlign = "right"; ctx.textBaseline = "middle";
  for (let v = 0; v <= ymax; v += ystep) {
    ctx.beginPath(); ctx.moveTo(pad.l, y(v)); ctx.lineTo(width - pad.r, y(v)); ctx.stroke();
    ctx.fillText(String(v), pad.l - 6, y(v));
  }
  ctx.textAlign = "center"; ctx.textBaseline = "top";
  const tstep = [10, 30, 60, 300, 600, 1800, 3600].find(s => (now - t0) / s <= 8) || 7200;
  for (let t = Math.ceil(t0 / tstep) * tstep; t <= now; t += tstep) {
    const d = new Date(t * 1000);
    ctx.fillText(d.toTimeString().slice(0, tstep < 60 ? 8 : 5), x(t), height - pad.b + 6);
  }
  Object.keys(series).sort().forEach((line, i) => {
    const pts = series[line].filter(p => p.t >= t0);
    if (!pts.length) return;
    ctx.strokeStyle = CHART_COLOURS[i % CHART_COLOURS.length]; ctx.lineWidth = 2;
    ctx.beginPath();
    pts.forEach((p, k) => {
      // a step line: the count holds until the next point
      if (k === 0) ctx.moveTo(x(p.t), y(p.total));
      else { ctx.lineTo(x(p.t), y(pts[k - 1].total)); ctx.lineTo(x(p.t), y(p.total)); }
    });
    ctx.lineTo(x(now), y(pts[pts.length - 1].total));
    ctx.stroke();
  });
}

function chartLegend(element, lines) {
  element.innerHTML = "";
  lines.slice().sort().forEach((line, i) => {
    const item = document.createElement("span");
    item.innerHTML = `<i style="background:${CHART_COLOURS[i % CHART_COLOURS.length]}"></i>`;
    item.append(line);
    element.append(item);
  });
}
