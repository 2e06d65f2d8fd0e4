// neuronkit playground: the page. Plain JavaScript, no dependencies. It sends commands over one WebSocket and draws
// the newest frame it received once per animation frame (older frames are skipped: drawing never holds training up).
"use strict";

const TOKEN = document.querySelector('meta[name="nk-token"]').content;
const $ = (id) => document.getElementById(id);
const KEYS = ["data", "noise", "test_ratio", "samples", "features", "hidden", "activations", "optimizer", "lr",
  "batch_size", "l2", "dropout", "init", "seed"];
const LISTS = new Set(["features", "hidden", "activations"]);
const INTS = new Set(["samples", "batch_size", "seed"]);

const state = {
  ws: null, nextId: 1, pending: new Map(), options: null, config: null, data: null, frame: null, drawn: null,
  playing: false, selected: null, neuron: null, curves: [], layout: null, stats: { heatmapUpdates: 0, frames: 0 },
  neuronAsked: 0, toggledAt: -1e9,
};
const TOGGLE_GRACE_MS = 1500; // after a Play/Pause click, frames already on their way may still show the old state
window.nkPlayground = state; // read by the browser tests and the speed measurement

// -- colours ------------------------------------------------------------------------------------------------------
// byte 0..255 for -1..1: orange (negative) through white to blue (positive), as the edges
const PALETTE = (() => {
  const p = new Uint8ClampedArray(256 * 4);
  const neg = [232, 115, 12], pos = [31, 119, 180];
  for (let i = 0; i < 256; i++) {
    const v = i / 127.5 - 1, c = v < 0 ? neg : pos, t = Math.abs(v);
    for (let k = 0; k < 3; k++) p[i * 4 + k] = Math.round(255 + (c[k] - 255) * t);
    p[i * 4 + 3] = 255;
  }
  return p;
})();

function b64bytes(s) {
  const bin = atob(s), out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}
const b64floats = (s) => new Float32Array(b64bytes(s).buffer);

// -- the connection -----------------------------------------------------------------------------------------------
function connect() {
  const ws = new WebSocket(`ws://${location.host}/ws?token=${encodeURIComponent(TOKEN)}`);
  state.ws = ws;
  ws.onopen = () => send({ type: "hello" }).then(onHello);
  ws.onmessage = (ev) => onMessage(JSON.parse(ev.data));
  ws.onclose = () => setStatus("disconnected: restart neuronkit playground and reload");
}

function send(msg) {
  const id = state.nextId++;
  state.ws.send(JSON.stringify({ ...msg, id }));
  return new Promise((resolve) => state.pending.set(id, resolve));
}

function onMessage(m) {
  if (m.type === "frame") {
    if (!m.full && state.frame) { // a light frame: heatmaps only; the rest stays as last received
      for (const k of ["train", "test", "measured", "flags", "weights"]) m[k] = state.frame[k];
    }
    state.frame = m;
    return;
  }
  if (m.type === "data") { state.data = m; state.drawn = null; return; }
  if (m.type === "diagnosis") showDiagnosis(m); // pushed while training, or the reply to "diagnose"
  if (m.type === "trial") showTrial(m); // a "try the fix" running, then its result
  if (m.id != null && state.pending.has(m.id)) {
    const resolve = state.pending.get(m.id);
    state.pending.delete(m.id);
    if (m.type === "error") showMessage(m.message);
    resolve(m);
  } else if (m.type === "error") {
    showMessage(m.message);
  }
}

function showMessage(text) {
  const el = $("message");
  el.textContent = text;
  el.hidden = !text;
  if (text) console.warn("playground:", text);
}

function setStatus(text) { $("status").textContent = text; }

// -- settings <-> URL ---------------------------------------------------------------------------------------------
function configFromHash(base) {
  const cfg = { ...base };
  const params = new URLSearchParams(location.hash.slice(1));
  for (const k of KEYS) {
    if (!params.has(k)) continue;
    const v = params.get(k);
    if (LISTS.has(k)) {
      const items = v === "" ? [] : v.split(",");
      cfg[k] = k === "hidden" ? items.map(Number) : items;
    } else if (k === "data" || k === "optimizer" || k === "init") {
      cfg[k] = v;
    } else {
      cfg[k] = INTS.has(k) ? parseInt(v, 10) : Number(v);
    }
  }
  return cfg;
}

function writeHash(cfg) {
  const params = new URLSearchParams();
  for (const k of KEYS) params.set(k, LISTS.has(k) ? cfg[k].join(",") : String(cfg[k]));
  history.replaceState(null, "", `${location.pathname}${location.search}#${params.toString()}`);
}

async function onHello(reply) {
  state.options = reply.options;
  send({ type: "pause" }); // a page that opens starts paused
  fillSelect($("data"), reply.options.datasets);
  fillSelect($("optimizer"), reply.options.optimizers);
  fillSelect($("init"), reply.options.inits);
  const feats = $("features");
  feats.textContent = "";
  for (const f of reply.options.features) {
    const label = document.createElement("label");
    const box = document.createElement("input");
    box.type = "checkbox"; box.value = f; box.id = `feature-${f}`;
    box.addEventListener("change", () => {
      const chosen = [...feats.querySelectorAll("input:checked")].map((b) => b.value);
      if (chosen.length) applyConfig({ ...state.config, features: chosen }); else box.checked = true;
    });
    label.append(box, ` ${f}`);
    feats.append(label);
  }
  $("save").hidden = !reply.options.can_save;
  state.config = reply.config; // the server's settings stand while a link's settings are refused
  const r = await applyConfig(configFromHash(reply.config));
  if (r.type === "error") writeHash(state.config);
  send({ type: "diagnose" });
}

function fillSelect(sel, names) {
  sel.textContent = "";
  for (const n of names) {
    const o = document.createElement("option");
    o.value = n; o.textContent = n;
    sel.append(o);
  }
}

// Send new settings; the server rebuilds the experiment unless only lr or L2 changed.
async function applyConfig(cfg) {
  const toggled = state.toggledAt;
  const reply = await send({ type: "configure", config: cfg });
  if (reply.type === "error") { showControls(state.config || cfg); return reply; }
  showMessage("");
  state.config = cfg;
  if (reply.rebuilt) {
    // a new experiment starts paused, unless Play was pressed while the answer was on its way (it came after)
    if (state.toggledAt === toggled) state.playing = false;
    state.curves = []; state.selected = null; $("neuron-panel").hidden = true;
    send({ type: "diagnose" }); // the new experiment, as it starts
  }
  writeHash(cfg);
  showControls(cfg);
  return reply;
}

function showControls(cfg) {
  for (const k of ["data", "optimizer", "init", "lr", "batch_size", "l2", "dropout", "samples", "seed"]) {
    $(k).value = cfg[k];
  }
  $("noise").value = cfg.noise; $("noise-value").textContent = cfg.noise;
  $("test_ratio").value = cfg.test_ratio; $("test-ratio-value").textContent = cfg.test_ratio;
  for (const box of $("features").querySelectorAll("input")) box.checked = cfg.features.includes(box.value);
  $("toy-settings").hidden = !["circles", "xor", "gaussians", "spirals", "moons"].includes(cfg.data);
  $("play").textContent = state.playing ? "Pause" : "Play";
  const lc = $("layer-controls");
  lc.textContent = "";
  cfg.hidden.forEach((units, i) => {
    const box = document.createElement("div");
    box.className = "layer-control";
    const n = document.createElement("input");
    n.type = "number"; n.min = 1; n.max = state.options.caps.units; n.value = units; n.id = `units-${i}`;
    n.title = `units of hidden layer ${i + 1}`;
    n.addEventListener("change", () => {
      const hidden = [...cfg.hidden]; hidden[i] = parseInt(n.value, 10) || 1;
      applyConfig({ ...state.config, hidden });
    });
    const act = document.createElement("select");
    fillSelect(act, state.options.activations);
    act.value = cfg.activations[i]; act.id = `activation-${i}`;
    act.addEventListener("change", () => {
      const activations = [...cfg.activations]; activations[i] = act.value;
      applyConfig({ ...state.config, activations });
    });
    box.append(`layer ${i + 1}: `, n, " ", act);
    lc.append(box);
  });
}

function bindControls() {
  const num = (id, key, parse = Number) => $(id).addEventListener("change", () => {
    applyConfig({ ...state.config, [key]: parse($(id).value) });
  });
  for (const k of ["lr", "l2", "dropout"]) num(k, k);
  for (const k of ["batch_size", "samples", "seed"]) num(k, k, (v) => parseInt(v, 10));
  for (const k of ["data", "optimizer", "init"]) {
    $(k).addEventListener("change", () => applyConfig({ ...state.config, [k]: $(k).value }));
  }
  $("noise").addEventListener("change", () => applyConfig({ ...state.config, noise: Number($("noise").value) }));
  $("test_ratio").addEventListener("change", () => {
    applyConfig({ ...state.config, test_ratio: Number($("test_ratio").value) });
  });
  $("add-layer").addEventListener("click", () => {
    const c = state.config;
    if (c.hidden.length >= state.options.caps.layers) return;
    applyConfig({ ...c, hidden: [...c.hidden, c.hidden[c.hidden.length - 1] || 4],
      activations: [...c.activations, c.activations[c.activations.length - 1] || "tanh"] });
  });
  $("remove-layer").addEventListener("click", () => {
    const c = state.config;
    if (!c.hidden.length) return;
    applyConfig({ ...c, hidden: c.hidden.slice(0, -1), activations: c.activations.slice(0, -1) });
  });
  $("play").addEventListener("click", async () => {
    state.toggledAt = performance.now();
    state.playing = !state.playing;
    $("play").textContent = state.playing ? "Pause" : "Play";
    await send({ type: state.playing ? "play" : "pause" });
    if (!state.playing) send({ type: "diagnose" }); // where training stopped
  });
  $("diagnose").addEventListener("click", async () => { // one at a time: each costs the training thread a pause
    $("diagnose").disabled = true;
    try { await send({ type: "diagnose" }); } finally { $("diagnose").disabled = false; }
  });
  $("try-fix").addEventListener("click", () => { $("try-fix").disabled = true; send({ type: "try_fix" }); });
  $("revive").addEventListener("click", async () => {
    if (!state.selected) return;
    const r = await send({ type: "revive", ...state.selected });
    if (r.type === "neuron") showNeuron(r);
  });
  $("explain").addEventListener("click", async () => {
    if (!state.selected) return;
    const r = await send({ type: "explain", ...state.selected, sample: parseInt($("explain-sample").value, 10) || 0 });
    if (r.type === "explain") showExplain(r);
  });
  $("step").addEventListener("click", () => send({ type: "step" }));
  $("reset").addEventListener("click", () => {
    state.playing = false;
    applyConfig({ ...state.config, seed: parseInt($("seed").value, 10) || 0 }).then(() => send({ type: "reset" }))
      .then(() => { state.curves = []; $("play").textContent = "Play"; });
  });
  $("save").addEventListener("click", async () => {
    $("saved").textContent = "saving…";
    const r = await send({ type: "save" });
    $("saved").textContent = r.type === "saved" ? `saved: ${r.path}` : "not saved";
  });
  $("net").addEventListener("click", onNetClick);
  $("set-bias").addEventListener("click", () => editNeuron({ bias: Number($("bias").value) }));
  $("set-weight").addEventListener("click", () => editNeuron({
    weight: parseInt($("weight-index").value, 10), value: Number($("weight-value").value),
  }));
  $("weight-index").addEventListener("change", () => {
    if (state.neuron) $("weight-value").value = state.neuron.weights[parseInt($("weight-index").value, 10)];
  });
  $("ablate").addEventListener("click", async () => {
    if (!state.selected) return;
    const on = !(state.neuron && state.neuron.ablated);
    const r = await send({ type: "ablate", ...state.selected, on });
    if (r.type === "ablated") {
      $("ablation-result").textContent =
        `test accuracy ${pct(r.before)} → ${pct(r.after)} (${r.after >= r.before ? "+" : ""}${pct(r.after - r.before)})`;
      $("ablation-result").dataset.before = r.before;
      $("ablation-result").dataset.after = r.after;
    }
    askNeuron();
  });
  $("freeze").addEventListener("click", async () => {
    if (!state.selected) return;
    await send({ type: "freeze", ...state.selected, on: !(state.neuron && state.neuron.frozen) });
    askNeuron();
  });
}

const pct = (v) => `${(100 * v).toFixed(1)} %`;
const fmt = (v) => (v == null ? "–" : Math.abs(v) >= 1e4 || (Math.abs(v) < 1e-3 && v !== 0) ? v.toExponential(3) : v.toFixed(4));

// -- the network drawing ------------------------------------------------------------------------------------------
function layout(canvas, inputs, layers) {
  const cols = [inputs, ...layers];
  const W = canvas.width, H = canvas.height, pad = 24;
  const colX = (c) => pad + 20 + (c * (W - 2 * pad - 40)) / Math.max(1, cols.length - 1);
  const nodes = cols.map((n, c) => {
    const shown = n;
    const gap = (H - 2 * pad) / shown;
    const size = Math.max(1, Math.min(40, gap > 8 ? gap - 4 : gap * 0.8)); // large layers: a strip of thin units
    const top = pad + Math.max(0, (H - 2 * pad - gap * shown) / 2);
    return Array.from({ length: shown }, (_, i) => ({ x: colX(c), y: top + gap * (i + 0.5), size }));
  });
  return { nodes };
}

const scratch = new Map(); // grid size -> an offscreen canvas to turn bytes into pixels
function drawHeat(ctx, bytes, offset, g, x, y, size) {
  let c = scratch.get(g);
  if (!c) { c = document.createElement("canvas"); c.width = g; c.height = g; scratch.set(g, c); }
  const cctx = c.getContext("2d"), img = cctx.createImageData(g, g), px = img.data;
  for (let i = 0; i < g * g; i++) {
    const p = bytes[offset + i] * 4;
    px[i * 4] = PALETTE[p]; px[i * 4 + 1] = PALETTE[p + 1]; px[i * 4 + 2] = PALETTE[p + 2]; px[i * 4 + 3] = 255;
  }
  cctx.putImageData(img, 0, 0);
  ctx.imageSmoothingEnabled = true;
  ctx.drawImage(c, x, y, size, size);
}

function drawNetwork(f) {
  const canvas = $("net"), ctx = canvas.getContext("2d");
  const inputs = state.data ? (Array.isArray(state.data.inputs) ? state.data.inputs.length : state.data.inputs) : 0;
  const lay = layout(canvas, inputs, f.layers);
  state.layout = lay;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  // edges
  if (f.weights) {
    f.weights.forEach((wl, l) => {
      const w = b64floats(wl.w), [out, inn] = wl.shape;
      let max = 1e-9;
      for (const v of w) max = Math.max(max, Math.abs(v));
      const thin = out * inn > 4000;
      for (let j = 0; j < out; j++) {
        for (let i = 0; i < inn; i++) {
          const v = w[j * inn + i], a = lay.nodes[l][i], b = lay.nodes[l + 1][j];
          const t = Math.abs(v) / max, alpha = thin ? 0.05 + 0.3 * t : 0.15 + 0.75 * t;
          ctx.strokeStyle = `${v >= 0 ? "rgba(31,119,180," : "rgba(232,115,12,"}${alpha.toFixed(3)})`;
          ctx.lineWidth = thin ? 0.5 : 0.5 + 3.5 * t;
          ctx.beginPath(); ctx.moveTo(a.x, a.y); ctx.lineTo(b.x, b.y); ctx.stroke();
        }
      }
    });
  }
  // nodes
  const h = f.heatmaps, flags = keyed(f.flags), ablated = keyedList(f.ablated), frozen = keyedList(f.frozen);
  const inBytes = h && h.grid && h.inputs ? b64bytes(h.inputs) : null;
  const hidBytes = h && h.grid && h.hidden ? h.hidden.map(b64bytes) : null;
  const outBytes = h ? b64bytes(h.output) : null;
  lay.nodes.forEach((col, c) => col.forEach((n, i) => {
    const s = n.size, x = n.x - s / 2, y = n.y - s / 2;
    const isOut = c === lay.nodes.length - 1;
    if (c === 0 && inBytes && s >= 8) drawHeat(ctx, inBytes, i * h.grid * h.grid, h.grid, x, y, s);
    else if (c > 0 && !isOut && hidBytes && s >= 8) drawHeat(ctx, hidBytes[c - 1], i * h.grid * h.grid, h.grid, x, y, s);
    else if (isOut && outBytes && s >= 8 && i === 1) drawHeat(ctx, outBytes, 0, h.output_grid, x, y, s);
    else { ctx.fillStyle = c === 0 ? "#ddd" : "#bbb"; ctx.fillRect(x, y, s, s); }
    const key = `${c - 1},${i}`;
    ctx.lineWidth = 2; ctx.setLineDash([]);
    ctx.strokeStyle = "#999";
    if (flags.dead.has(key)) ctx.strokeStyle = "#d62728";
    if (flags.saturated.has(key)) ctx.strokeStyle = "#9467bd";
    if (frozen.has(key)) ctx.setLineDash([3, 2]);
    if (state.selected && c - 1 === state.selected.layer && i === state.selected.unit) {
      ctx.strokeStyle = "#000"; ctx.lineWidth = 3;
    }
    ctx.strokeRect(x, y, s, s);
    ctx.setLineDash([]);
    if (ablated.has(key)) {
      ctx.strokeStyle = "#666"; ctx.lineWidth = 2;
      ctx.beginPath(); ctx.moveTo(x, y); ctx.lineTo(x + s, y + s); ctx.moveTo(x + s, y); ctx.lineTo(x, y + s); ctx.stroke();
    }
  }));
  if (h && h.grid) state.stats.heatmapUpdates++;
}

const keyedList = (pairs) => new Set((pairs || []).map(([l, u]) => `${l},${u}`));
const keyed = (fl) => ({ dead: keyedList(fl && fl.dead), saturated: keyedList(fl && fl.saturated) });

function onNetClick(ev) {
  if (!state.layout) return;
  const canvas = $("net"), r = canvas.getBoundingClientRect();
  const x = ((ev.clientX - r.left) * canvas.width) / r.width, y = ((ev.clientY - r.top) * canvas.height) / r.height;
  let best = null; // the nearest neuron within reach of the click
  state.layout.nodes.forEach((col, c) => col.forEach((n, i) => {
    const d = Math.max(Math.abs(x - n.x), Math.abs(y - n.y));
    if (c > 0 && d <= Math.max(n.size / 2, 6) && (!best || d < best.d)) best = { d, layer: c - 1, unit: i };
  }));
  if (best) selectNeuron(best.layer, best.unit);
}

function selectNeuron(layer, unit) {
  state.selected = { layer, unit };
  $("neuron-panel").hidden = false;
  $("ablation-result").textContent = "";
  $("explain-table").textContent = ""; $("explain-summary").textContent = "";
  delete $("explain-summary").dataset.output;
  $("top-panel").hidden = true; $("top-inputs").textContent = "";
  askNeuron(true);
}

// top: with the inputs that excite it most (asked on a click, not on every refresh while training)
async function askNeuron(top = false) {
  if (!state.selected) return;
  state.neuronAsked = performance.now();
  const r = await send({ type: "neuron", ...state.selected, top });
  if (r.type === "neuron") showNeuron(r);
}

async function editNeuron(change) {
  if (!state.selected) return;
  const r = await send({ type: "edit", ...state.selected, ...change });
  if (r.type === "neuron") showNeuron(r);
}

// -- the neuron panel ---------------------------------------------------------------------------------------------
function showNeuron(n) {
  state.neuron = n;
  const last = state.frame && state.frame.layers && n.layer === state.frame.layers.length - 1;
  $("neuron-title").textContent = `${last ? "Output" : "Layer " + (n.layer + 1)}, unit ${n.unit} (${n.activation})`;
  $("neuron-title").dataset.layer = n.layer; $("neuron-title").dataset.unit = n.unit;
  const bv = $("bias-value");
  bv.textContent = n.bias == null ? "no bias" : `= ${fmt(n.bias)}`;
  bv.dataset.value = n.bias;
  if (document.activeElement !== $("bias")) $("bias").value = n.bias;
  $("ablate").textContent = n.ablated ? "Restore" : "Ablate";
  $("freeze").textContent = n.frozen ? "Unfreeze" : "Freeze";
  $("ablate").classList.toggle("on", n.ablated); $("freeze").classList.toggle("on", n.frozen);
  const flags = keyed(state.frame && state.frame.flags), key = `${n.layer},${n.unit}`;
  $("neuron-flags").textContent = [flags.dead.has(key) ? "dead" : "", flags.saturated.has(key) ? "saturated" : "",
    `mean output ${fmt(n.output_mean)}`].filter(Boolean).join(" · ");
  const sel = $("weight-index"), prev = sel.value;
  if (sel.options.length !== n.weights.length) {
    fillSelect(sel, n.weights.map((_, i) => String(i)));
    [...sel.options].forEach((o, i) => { o.textContent = n.inputs ? `${i}: ${n.inputs[i]}` : `from unit ${i}`; });
  }
  if (prev && Number(prev) < n.weights.length) sel.value = prev;
  if (document.activeElement !== $("weight-value")) $("weight-value").value = n.weights[parseInt(sel.value || "0", 10)];
  const table = $("weights-table");
  table.textContent = "";
  n.weights.slice(0, 512).forEach((w, i) => {
    const tr = document.createElement("tr");
    const a = document.createElement("td"), b = document.createElement("td");
    a.textContent = n.inputs ? n.inputs[i] : `unit ${i}`;
    b.textContent = fmt(w); b.dataset.value = w; b.className = "weight";
    tr.append(a, b); table.append(tr);
  });
  drawWeightImage(n);
  if (n.top !== undefined) drawTopInputs(n.top);
  drawHistogram(n.histogram);
  drawHistory(n.history);
  const ev = $("events");
  ev.textContent = "";
  for (const e of n.events) { const li = document.createElement("li"); li.textContent = e; ev.append(li); }
}

function drawWeightImage(n) {
  const c = $("weight-image");
  c.hidden = !n.image_shape;
  if (!n.image_shape) return;
  const [hh, ww] = n.image_shape, ctx = c.getContext("2d");
  let max = 1e-9;
  for (const v of n.weights) max = Math.max(max, Math.abs(v));
  const bytes = Uint8Array.from(n.weights, (v) => Math.round((v / max + 1) * 127.5));
  const off = document.createElement("canvas"); off.width = ww; off.height = hh;
  const octx = off.getContext("2d"), img = octx.createImageData(ww, hh);
  for (let i = 0; i < ww * hh; i++) for (let k = 0; k < 4; k++) img.data[i * 4 + k] = PALETTE[bytes[i] * 4 + k];
  octx.putImageData(img, 0, 0);
  ctx.imageSmoothingEnabled = false;
  ctx.clearRect(0, 0, c.width, c.height);
  ctx.drawImage(off, 0, 0, c.width, c.height);
}

function grayImage(b64, h, w) {
  const bytes = b64bytes(b64), c = document.createElement("canvas");
  c.width = w; c.height = h;
  const ctx = c.getContext("2d"), img = ctx.createImageData(w, h);
  for (let i = 0; i < w * h; i++) {
    img.data[i * 4] = img.data[i * 4 + 1] = img.data[i * 4 + 2] = 255 - bytes[i]; img.data[i * 4 + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
  return c;
}

function drawTopInputs(top) {
  const box = $("top-inputs");
  box.textContent = "";
  $("top-panel").hidden = !top;
  if (!top) return;
  for (const it of top.items) {
    const cell = document.createElement("div"), cap = document.createElement("span");
    cell.className = top.shape ? "thumb" : "thumb text"; cell.dataset.sample = it.sample;
    cell.dataset.response = it.response;
    cap.textContent = `#${it.sample} “${it.label}” ${fmt(it.response)}`;
    if (top.shape) cell.append(grayImage(it.image, top.shape[0], top.shape[1]), cap);
    else { const q = document.createElement("q"); q.textContent = it.text; cell.append(cap, q); }
    box.append(cell);
  }
  box.title = `the test inputs (of ${top.searched} searched) with the largest output of this unit`;
}

// the terms of activation(w . x + b) on one input: the largest |w_i x_i| first, the rest summed
function showExplain(e) {
  const t = $("explain-table");
  t.textContent = "";
  const head = document.createElement("tr");
  for (const h of ["input", "x_i", "w_i", "w_i x_i"]) { const th = document.createElement("th"); th.textContent = h; head.append(th); }
  t.append(head);
  const order = e.products.map((_, i) => i).filter((i) => e.products[i] !== 0) // a text's absent words: 0
    .sort((a, b) => Math.abs(e.products[b]) - Math.abs(e.products[a]));
  const shown = order.slice(0, 12), zeros = e.products.length - order.length;
  for (const i of shown) {
    const tr = document.createElement("tr");
    tr.className = "term"; tr.dataset.index = i; tr.dataset.product = e.products[i];
    const name = e.names ? e.names[i] : `unit ${i}`;
    for (const v of [name, fmt(e.inputs[i]), fmt(e.weights[i]), fmt(e.products[i])]) {
      const td = document.createElement("td"); td.textContent = v; tr.append(td);
    }
    t.append(tr);
  }
  if (order.length > shown.length) {
    let rest = 0;
    for (const i of order.slice(shown.length)) rest += e.products[i];
    const tr = document.createElement("tr"), td = document.createElement("td");
    td.colSpan = 4; td.textContent = `${order.length - shown.length} smaller terms: ${fmt(rest)}`;
    tr.append(td); t.append(tr);
  }
  if (zeros) {
    const tr = document.createElement("tr"), td = document.createElement("td");
    td.colSpan = 4; td.textContent = `${zeros} terms are 0 (input or weight 0)`;
    tr.append(td); t.append(tr);
  }
  const s = $("explain-summary");
  s.textContent = `test sample ${e.sample} (label “${e.label}”): w · x = ${fmt(e.weighted_sum)}, + bias ${fmt(e.bias)}` +
    ` → z = ${fmt(e.pre_activation)} → ${e.activation}(z) = ${fmt(e.output)}` +
    (e.ablated ? `; ablated: the model passes on ${fmt(e.in_model)}` : "");
  Object.assign(s.dataset, { sample: e.sample, weightedSum: e.weighted_sum, bias: e.bias, pre: e.pre_activation,
    output: e.output, inModel: e.in_model });
}

function showDiagnosis(d) {
  state.diagnosis = d;
  $("diagnosis-info").textContent = `step ${d.step}, epoch ${d.epoch}: the model at initialisation and now, on ` +
    `${d.samples} test samples` + (d.more ? ` (${d.more} more findings not shown)` : "");
  $("diagnosis-info").dataset.step = d.step;
  const ul = $("findings");
  ul.textContent = "";
  if (!d.findings.length) { const li = document.createElement("li"); li.textContent = "No problems found."; ul.append(li); }
  for (const f of d.findings) {
    const li = document.createElement("li");
    li.className = f.severity; li.dataset.kind = f.kind; li.textContent = f.text;
    ul.append(li);
  }
  const running = state.trial && state.trial.status === "running";
  $("try-fix").disabled = !(state.options && state.options.can_try_fix && d.fixable) || running;
}

function showTrial(t) {
  const old = state.trial; // the reply "running" may arrive after the result it announced: keep the newest
  if (old && (t.trial < old.trial || (t.trial === old.trial && t.status === "running"))) return;
  state.trial = t;
  $("trial").hidden = false;
  const title = $("trial-title");
  title.dataset.status = t.status;
  if (t.status === "running") {
    title.textContent = `Try the fix: training the remedies from step ${t.step}'s settings…`;
    $("try-fix").disabled = true;
    return;
  }
  $("try-fix").disabled = !(state.diagnosis && state.diagnosis.fixable);
  if ($("message").textContent.startsWith("busy:")) showMessage(""); // a command refused while it ran
  const table = $("trial-table"), ul = $("verdicts");
  table.textContent = ""; ul.textContent = "";
  if (t.status === "error") { title.textContent = `Try the fix failed: ${t.message}`; return; }
  title.textContent = `Try the fix: ${t.epochs} epoch(s) from seed ${t.config.seed}, measured on the ${t.held_out}` +
    ` (${t.seconds} s)`;
  const head = document.createElement("tr");
  for (const h of ["settings", "train loss", "held-out loss", "accuracy", "dead", "saturated", "stopped"]) {
    const th = document.createElement("th"); th.textContent = h; head.append(th);
  }
  table.append(head);
  const p = (v) => (v == null ? "–" : pct(v));
  t.trials.forEach((r, i) => {
    const tr = document.createElement("tr");
    tr.className = "trial"; tr.dataset.accuracy = r.accuracy; tr.dataset.loss = r.eval_loss;
    const cells = [i ? `remedy ${i}` : "original", fmt(r.loss), fmt(r.eval_loss), p(r.accuracy), p(r.dead_frac),
      p(r.saturated_frac), r.stopped || ""];
    for (const v of cells) { const td = document.createElement("td"); td.textContent = v; tr.append(td); }
    tr.title = r.label;
    table.append(tr);
  });
  t.verdicts.forEach((v, i) => {
    const r = t.trials[i + 1], li = document.createElement("li");
    li.textContent = `remedy ${i + 1} (${r.label}: ${Object.entries(r.changes).map(([k, x]) => `${k}=${x}`).join(", ")}): ${v}`;
    ul.append(li);
  });
}

function drawHistogram(h) {
  const c = $("histogram"), ctx = c.getContext("2d");
  ctx.clearRect(0, 0, c.width, c.height);
  const max = Math.max(1, ...h.counts), w = c.width / h.counts.length;
  ctx.fillStyle = "#1f77b4";
  h.counts.forEach((n, i) => { const hh = ((c.height - 14) * n) / max; ctx.fillRect(i * w, c.height - 14 - hh, w - 1, hh); });
  ctx.fillStyle = "#333"; ctx.font = "10px sans-serif";
  ctx.fillText(fmt(h.edges[0]), 0, c.height - 2);
  const right = fmt(h.edges[h.edges.length - 1]);
  ctx.fillText(right, c.width - ctx.measureText(right).width, c.height - 2);
}

function drawSeries(ctx, xs, ys, color, box) {
  const pts = ys.map((y, i) => [xs[i], y]).filter(([, y]) => y != null && Number.isFinite(y));
  if (pts.length < 2) return;
  let lo = Infinity, hi = -Infinity;
  for (const [, y] of pts) { lo = Math.min(lo, y); hi = Math.max(hi, y); }
  if (hi - lo < 1e-12) { hi = lo + 1; }
  const x0 = xs[0], x1 = xs[xs.length - 1] || 1;
  ctx.strokeStyle = color; ctx.lineWidth = 1.5; ctx.beginPath();
  pts.forEach(([x, y], i) => {
    const px = box.x + ((x - x0) / Math.max(1e-9, x1 - x0)) * box.w, py = box.y + box.h - ((y - lo) / (hi - lo)) * box.h;
    if (i) ctx.lineTo(px, py); else ctx.moveTo(px, py);
  });
  ctx.stroke();
}

function drawHistory(h) {
  const c = $("history"), ctx = c.getContext("2d");
  ctx.clearRect(0, 0, c.width, c.height);
  if (!h || h.step.length < 2) { ctx.fillStyle = "#888"; ctx.fillText("no probe records yet", 10, 20); return; }
  const box = { x: 2, y: 2, w: c.width - 4, h: c.height - 4 };
  drawSeries(ctx, h.step, h.out_mean, "#1f77b4", box);
  drawSeries(ctx, h.step, h.active_frac, "#2ca02c", box);
  drawSeries(ctx, h.step, h.grad_norm, "#d62728", box);
  drawSeries(ctx, h.step, h.update_ratio, "#9467bd", box);
}

// -- the output ---------------------------------------------------------------------------------------------------
function drawOutput(f) {
  const c = $("output"), ctx = c.getContext("2d");
  ctx.clearRect(0, 0, c.width, c.height);
  const d = state.data;
  if (!f.heatmaps || !d || !d.points) {
    ctx.fillStyle = "#555"; ctx.font = "13px sans-serif";
    if (d) ctx.fillText(`${d.name}: ${d.sizes.train} training, ${d.sizes.test} test samples`, 10, 20);
    return;
  }
  drawHeat(ctx, b64bytes(f.heatmaps.output), 0, f.heatmaps.output_grid, 0, 0, c.width);
  if (!d.cache) {
    d.cache = {
      train: b64floats(d.points.train), test: b64floats(d.points.test),
      ytrain: b64bytes(d.points.train_labels), ytest: b64bytes(d.points.test_labels),
    };
  }
  const e = d.extent, sx = (x) => ((x + e) / (2 * e)) * c.width, sy = (y) => ((e - y) / (2 * e)) * c.height;
  const dot = (pts, ys, stroke) => {
    ctx.strokeStyle = stroke; ctx.lineWidth = 1;
    for (let i = 0; i < ys.length; i++) {
      ctx.fillStyle = ys[i] === 1 ? "#1f77b4" : "#e8730c";
      ctx.beginPath(); ctx.arc(sx(pts[2 * i]), sy(pts[2 * i + 1]), 3, 0, 2 * Math.PI); ctx.fill(); ctx.stroke();
    }
  };
  dot(d.cache.train, d.cache.ytrain, "#fff");
  dot(d.cache.test, d.cache.ytest, "#000");
}

function drawCurves() {
  const c = $("curves"), ctx = c.getContext("2d");
  ctx.clearRect(0, 0, c.width, c.height);
  const pts = state.curves;
  if (pts.length < 2) return;
  const xs = pts.map((p) => p.step), box = { x: 2, y: 2, w: c.width - 4, h: c.height - 4 };
  drawSeries(ctx, xs, pts.map((p) => p.train), "#1f77b4", box);
  drawSeries(ctx, xs, pts.map((p) => p.test), "#e8730c", box);
}

// The Play button follows the server: its frames say whether it trains ("trying the fix" is a pause it resumes
// from). Right after a click, frames sent before the server had it are not taken as an answer.
function syncPlaying(status) {
  if (!["playing", "paused", "error", "diverged"].includes(status)) return;
  const playing = status === "playing";
  if (playing === state.playing || performance.now() - state.toggledAt < TOGGLE_GRACE_MS) return;
  state.playing = playing;
  $("play").textContent = playing ? "Pause" : "Play";
}

// -- the animation loop -------------------------------------------------------------------------------------------
function render() {
  const f = state.frame;
  if (f && f !== state.drawn && state.options) {
    state.drawn = f;
    state.stats.frames++;
    if (f.status === "error" || f.status === "diverged") setStatus(`${f.status}: ${f.error}`);
    else setStatus(f.status);
    syncPlaying(f.status);
    if (f.layers && f.train) {
      $("counter").textContent = `step ${f.step} · epoch ${f.epoch}`;
      for (const s of ["train", "test"]) {
        $(`${s}-loss`).textContent = fmt(f[s].loss);
        $(`${s}-accuracy`).textContent = pct(f[s].accuracy);
        $(`${s}-accuracy`).dataset.value = f[s].accuracy;
      }
      const last = state.curves[state.curves.length - 1];
      if (!last || last.step !== f.step) state.curves.push({ step: f.step, train: f.train.loss, test: f.test.loss });
      if (state.curves.length > 2000) state.curves.splice(0, 1000);
      drawNetwork(f);
      drawOutput(f);
      drawCurves();
      const trying = state.trial && state.trial.status === "running";
      if (state.selected && state.playing && !trying && performance.now() - state.neuronAsked > 1000) askNeuron();
    }
  }
  requestAnimationFrame(render);
}

bindControls();
// a link pasted into this tab (only the part after # changed): its settings replace the current ones
window.addEventListener("hashchange", () => { if (state.config) applyConfig(configFromHash(state.config)); });
connect();
requestAnimationFrame(render);
