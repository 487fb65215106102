// The dashboard page: line cards, chart, recent bins/anomalies and health, kept live by server-sent events.
"use strict";

const FRAME_INTERVAL_MS = 250;   // ~4 frames/s per camera; the next one is asked for only once one has loaded
const HISTORY_RELOAD_MS = 60000;
const MAX_ROWS = 20;

const chart = {minutes: 60, series: {}};

const fmt = {
  time: t => new Date(t * 1000).toLocaleTimeString([], {hour: "2-digit", minute: "2-digit", second: "2-digit"}),
  rate: r => (r === null || r === undefined ? "–" : Math.round(r).toString()),
  ms: v => (v === null || v === undefined ? "–" : v.toFixed(1)),
  age: s => (s < 90 ? `${Math.round(s)} s` : s < 5400 ? `${Math.round(s / 60)} min` : `${(s / 3600).toFixed(1)} h`),
};

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v; else if (k.startsWith("on")) node[k] = v; else node.setAttribute(k, v);
  }
  node.append(...children);
  return node;
}

function figure(name, label) {
  return el("div", {class: "figure"}, el("b", {class: name}, "–"), el("span", {}, label));
}

// -- line cards --------------------------------------------------------------------------------------
function streamBlock(s) {
  const img = el("img", {alt: `latest frame of ${s.stream}`});
  const block = el("div", {class: "stream", "data-stream": s.stream},
    el("div", {class: "frame"}, img, el("div", {class: "nofeed"}, "waiting for frames…"),
      el("button", {type: "button", onclick: () => RoiEditor.open(s.stream)}, "Edit ROI")),
    el("div", {class: "figures"}, figure("local", "in bin"), figure("global", "total trays"),
      figure("bins", "bins"), figure("rate", "trays / h")));
  refreshFrame(img, s.frame_url);
  return block;
}

function refreshFrame(img, url) {
  const next = () => setTimeout(() => refreshFrame(img, url), document.hidden ? 2000 : FRAME_INTERVAL_MS);
  img.onload = () => { img.parentElement.querySelector(".nofeed").hidden = true; next(); };
  img.onerror = () => setTimeout(() => refreshFrame(img, url), 1000);
  img.src = `${url}?t=${Date.now()}`;
}

function renderLines(lines) {
  const root = document.getElementById("lines");
  for (const line of lines) {
    let card = root.querySelector(`.card[data-line="${CSS.escape(line.line)}"]`);
    if (!card) {
      card = el("article", {class: "card", "data-line": line.line}, el("h2", {}, line.line));
      for (const s of line.streams) card.append(streamBlock(s));
      root.append(card);
    }
    for (const s of line.streams) {
      const block = card.querySelector(`.stream[data-stream="${CSS.escape(s.stream)}"]`);
      block.querySelector(".local").textContent = s.local;
      block.querySelector(".global").textContent = s.global_count;
      block.querySelector(".bins").textContent = s.bins_completed;
      block.querySelector(".rate").textContent = fmt.rate(s.trays_per_hour);
    }
    const pts = chart.series[line.line] || (chart.series[line.line] = []);
    const t = Date.now() / 1000, total = line.global_count + line.local;
    if (!pts.length || pts[pts.length - 1].total !== total) pts.push({t, total});
  }
  chartLegend(document.getElementById("legend"), Object.keys(chart.series));
  drawChart(document.getElementById("chart"), chart.series, chart.minutes);
}

async function loadHistory() {
  const lines = Object.keys(chart.series);
  await Promise.all(lines.map(async line => {
    const response = await fetch(`/api/lines/${encodeURIComponent(line)}?minutes=${chart.minutes}`);
    if (response.ok) chart.series[line] = (await response.json()).history.map(p => ({t: p.t, total: p.total}));
  }));
  drawChart(document.getElementById("chart"), chart.series, chart.minutes);
}

// -- events and health -------------------------------------------------------------------------------
function prependRows(tableId, rows, makeRow) {
  const body = document.querySelector(`#${tableId} tbody`);
  for (const row of rows.slice().reverse()) body.prepend(makeRow(row));
  while (body.rows.length > MAX_ROWS) body.deleteRow(-1);
  document.getElementById(`${tableId}-empty`).hidden = body.rows.length > 0;
}

function snapshotCell(url) {
  return el("td", {}, url ? el("a", {href: url, target: "_blank"}, el("img", {src: url, alt: "snapshot"})) : "");
}

const binRow = b => el("tr", {"data-bin": b.id}, el("td", {}, fmt.time(b.wall_time)), el("td", {}, b.line),
  el("td", {}, `#${b.bin_id}`), el("td", {}, b.trays), el("td", {}, b.global_count), snapshotCell(b.snapshot_url));

const anomalyRow = a => el("tr", {class: a.is_anomalous ? "anomalous" : ""}, el("td", {}, fmt.time(a.wall_time)),
  el("td", {}, a.line), el("td", {}, a.score.toFixed(2) + (a.is_anomalous ? " ⚠" : "")),
  el("td", {}, `${a.area_percent.toFixed(1)} %`), snapshotCell(a.snapshot_url));

function renderHealth(h) {
  const dl = document.getElementById("health");
  const broker = h.broker || {};
  const outbox = h.outbox || {};
  const items = [
    ["Model", h.model_version],
    ["Uptime", h.uptime_s === null || h.uptime_s === undefined ? "–" : fmt.age(h.uptime_s)],
    ["Broker", broker.transport ? el("span", {class: broker.connected ? "ok" : "bad"},
      `${broker.connected ? "connected" : "disconnected"} (${broker.host}:${broker.port})`) : "publishing off"],
    ["Outbox", `${outbox.depth ?? "–"} queued` + (outbox.oldest_age_s ? `, oldest ${fmt.age(outbox.oldest_age_s)}` : "")],
    ["Inference", `p50 ${fmt.ms(h.inference_latency_ms.p50)} ms, p95 ${fmt.ms(h.inference_latency_ms.p95)} ms`],
  ];
  if (h.disk_full) items.push(["Disk", el("span", {class: "bad"}, "full: messages kept in memory")]);
  dl.replaceChildren(...items.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
  const body = document.querySelector("#stream-health tbody");
  body.replaceChildren(...Object.entries(h.streams).map(([name, s]) => el("tr", {},
    el("td", {}, name + (s.connected === false ? " (offline)" : "")), el("td", {}, s.fps.toFixed(1)),
    el("td", {}, s.dropped_frames), el("td", {}, fmt.ms(s.latency_ms.p95)))));
}

function connect() {
  const link = document.getElementById("link");
  const source = new EventSource("/api/events");
  source.onopen = () => { link.textContent = "live"; link.className = "badge on"; };
  source.onerror = () => { link.textContent = "reconnecting…"; link.className = "badge off"; };
  source.addEventListener("lines", e => renderLines(JSON.parse(e.data)));
  source.addEventListener("bins", e => prependRows("bins", JSON.parse(e.data), binRow));
  source.addEventListener("anomalies", e => prependRows("anomalies", JSON.parse(e.data), anomalyRow));
  source.addEventListener("health", e => renderHealth(JSON.parse(e.data)));
}

async function start() {
  RoiEditor.bind();
  const site = await fetch("/api/site").then(r => r.json()).catch(() => ({}));
  document.getElementById("site").textContent = site.site ? `· ${site.site}` : "";
  renderLines(await fetch("/api/lines").then(r => r.json()));
  await loadHistory();
  connect();
  setInterval(loadHistory, HISTORY_RELOAD_MS);
  window.addEventListener("resize", () => drawChart(document.getElementById("chart"), chart.series, chart.minutes));
  for (const button of document.querySelectorAll(".range button")) {
    button.onclick = () => {
      document.querySelectorAll(".range button").forEach(b => b.classList.toggle("on", b === button));
      chart.minutes = Number(button.dataset.minutes);
      loadHistory();
    };
  }
}

start();
