// ROI editor: the polygon drawn over a frozen, unannotated frame; points are kept in frame pixels.
// Click adds a point (inserted on the nearest edge once there are 3), drag moves one, double-click deletes one.
"use strict";

const RoiEditor = (() => {
  const dialog = () => document.getElementById("roi-dialog");
  const canvas = () => document.getElementById("roi-canvas");
  const message = (text, kind) => {
    const el = document.getElementById("roi-message");
    el.textContent = text; el.className = "message " + (kind || "");
  };
  let stream = null, image = null, points = [], saved = [], dragging = -1, scale = 1;

  function draw() {
    const c = canvas(), ctx = c.getContext("2d");
    ctx.clearRect(0, 0, c.width, c.height);
    if (image) ctx.drawImage(image, 0, 0, c.width, c.height);
    if (!points.length) return;
    ctx.lineWidth = 2; ctx.strokeStyle = "#ffb000"; ctx.fillStyle = "rgba(255, 176, 0, 0.18)";
    ctx.beginPath();
    points.forEach(([px, py], i) => (i ? ctx.lineTo(px * scale, py * scale) : ctx.moveTo(px * scale, py * scale)));
    if (points.length > 2) { ctx.closePath(); ctx.fill(); }
    ctx.stroke();
    ctx.fillStyle = "#fff";
    for (const [px, py] of points) {
      ctx.beginPath(); ctx.arc(px * scale, py * scale, 5, 0, 2 * Math.PI); ctx.fill(); ctx.stroke();
    }
  }

  function toFrame(event) {
    const r = canvas().getBoundingClientRect();
    const sx = canvas().width / r.width, sy = canvas().height / r.height;
    const x = (event.clientX - r.left) * sx / scale, y = (event.clientY - r.top) * sy / scale;
    return [Math.round(Math.min(Math.max(x, 0), image.width)), Math.round(Math.min(Math.max(y, 0), image.height))];
  }

  function nearest(p) {
    let best = -1, dist = 12 / scale;
    points.forEach((q, i) => { const d = Math.hypot(q[0] - p[0], q[1] - p[1]); if (d < dist) { dist = d; best = i; } });
    return best;
  }

  function edgeToInsert(p) {  // the edge closest to p: a new point goes between its two ends
    let best = points.length, dist = Infinity;
    points.forEach((a, i) => {
      const b = points[(i + 1) % points.length];
      const dx = b[0] - a[0], dy = b[1] - a[1], len = dx * dx + dy * dy || 1;
      const u = Math.max(0, Math.min(1, ((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / len));
      const d = Math.hypot(a[0] + u * dx - p[0], a[1] + u * dy - p[1]);
      if (d < dist) { dist = d; best = i + 1; }
    });
    return best;
  }

  function bind() {
    const c = canvas();
    c.addEventListener("mousedown", e => {
      if (!image) return;
      const p = toFrame(e), i = nearest(p);
      if (i >= 0) { dragging = i; return; }
      points.splice(points.length < 3 ? points.length : edgeToInsert(p), 0, p);
      draw();
    });
    c.addEventListener("mousemove", e => { if (dragging >= 0) { points[dragging] = toFrame(e); draw(); } });
    window.addEventListener("mouseup", () => { dragging = -1; });
    c.addEventListener("dblclick", e => {
      const i = nearest(toFrame(e));
      if (i >= 0) { points.splice(i, 1); draw(); }
    });
    document.getElementById("roi-clear").onclick = () => { points = []; draw(); message(""); };
    document.getElementById("roi-reset").onclick = () => { points = saved.map(p => p.slice()); draw(); message(""); };
    document.getElementById("roi-cancel").onclick = () => dialog().close();
    document.getElementById("roi-save").onclick = save;
  }

  async function open(name) {
    stream = name; points = []; image = null;
    document.getElementById("roi-stream").textContent = name;
    message("Loading…");
    dialog().showModal();
    const response = await fetch(`/api/roi/${encodeURIComponent(name)}`);
    const body = await response.json();
    if (!response.ok) { message(body.detail || response.statusText, "error"); return; }
    const img = new Image();
    img.onload = () => {
      image = img;
      scale = Math.min(960 / img.width, 600 / img.height);  // small frames are enlarged for precise clicks
      canvas().width = Math.round(img.width * scale); canvas().height = Math.round(img.height * scale);
      const current = body.points || [[0, 0], [img.width, 0], [img.width, img.height], [0, img.height]];
      saved = current.map(p => [p[0], p[1]]); points = saved.map(p => p.slice());
      message(body.points ? "" : "No ROI in the config: the whole frame counts.");
      draw();
    };
    img.onerror = () => message("No frame from this stream yet; try again in a moment.", "error");
    img.src = body.frame_url + "&t=" + Date.now();
  }

  async function save() {
    message("Saving…");
    const response = await fetch(`/api/roi/${encodeURIComponent(stream)}`, {
      method: "PUT", headers: {"Content-Type": "application/json"}, body: JSON.stringify({points}),
    });
    const body = await response.json();
    if (!response.ok) { message(body.detail || response.statusText, "error"); return; }
    saved = body.points.map(p => [p[0], p[1]]);
    message(`${body.message} (previous config: ${body.backup})`, "saved");
  }

  return {bind, open};
})();
