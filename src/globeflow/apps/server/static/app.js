// globeflow's page: send a photo to /api/predict and draw the answer. Plain JavaScript, no library.
"use strict";

const $ = (id) => document.getElementById(id);
// files: the chosen photos; selected: the one whose own answer is shown when they are not fused;
// within: ISO codes the answer is restricted to; photo: bumped on every new request, so a reply to
// an earlier one is dropped.
const state = { files: [], selected: 0, within: [], countries: {}, result: null, rings: [], view: null, grid: null,
  busy: false, pending: false, photo: 0 };
const canvas = $("map");
const ctx = canvas.getContext("2d");

// ---- map view: plate carree, k pixels per degree, centred on (lon0, lat0) ----------------------
function wholeWorld() {
  return { lon0: 0, lat0: 0, k: canvas.width / 360 };
}
function project(lon, lat) {
  const v = state.view;
  return [(lon - v.lon0) * v.k + canvas.width / 2, (v.lat0 - lat) * v.k + canvas.height / 2];
}
function unproject(x, y) {
  const v = state.view;
  return [(x - canvas.width / 2) / v.k + v.lon0, v.lat0 - (y - canvas.height / 2) / v.k];
}
function clampView() {
  const v = state.view;
  const minK = canvas.width / 360;
  v.k = Math.min(Math.max(v.k, minK), minK * 64);
  const halfLon = canvas.width / 2 / v.k, halfLat = canvas.height / 2 / v.k;
  v.lon0 = Math.min(Math.max(v.lon0, -180 + halfLon), 180 - halfLon);
  v.lat0 = Math.min(Math.max(v.lat0, -90 + halfLat), 90 - halfLat);
}
function zoomAt(x, y, factor) {
  const [lon, lat] = unproject(x, y);
  state.view.k *= factor;
  clampView();
  // keep the point under the cursor where it was
  const [x2, y2] = project(lon, lat);
  state.view.lon0 += (x2 - x) / state.view.k;
  state.view.lat0 -= (y2 - y) / state.view.k;
  clampView();
  draw();
}

// ---- colours: a perceptual ramp (dark blue -> teal -> yellow) over the density's top nats -------
const RAMP = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
function ramp(t) {
  const x = Math.min(Math.max(t, 0), 1) * (RAMP.length - 1);
  const i = Math.min(Math.floor(x), RAMP.length - 2), f = x - i;
  return RAMP[i].map((c, j) => Math.round(c + f * (RAMP[i + 1][j] - c)));
}
function densityImage(density) {
  const bytes = Uint8Array.from(atob(density.data), (c) => c.charCodeAt(0));
  const img = document.createElement("canvas");
  img.width = density.width;
  img.height = density.height;
  const g = img.getContext("2d");
  const pixels = g.createImageData(density.width, density.height);
  for (let i = 0; i < bytes.length; i++) {
    const v = bytes[i];
    if (v === 0) continue; // fainter than the range: transparent
    const t = (v - 1) / 254;
    const [r, gg, b] = ramp(t);
    pixels.data.set([r, gg, b, Math.round(255 * (0.3 + 0.6 * t))], 4 * i);
  }
  g.putImageData(pixels, 0, 0);
  return img;
}

// ---- drawing -------------------------------------------------------------------------------------
function draw() {
  const w = canvas.width, h = canvas.height;
  ctx.clearRect(0, 0, w, h);
  ctx.fillStyle = "#dce8f3";
  ctx.fillRect(0, 0, w, h);
  const [x0, y0] = project(-180, 90), [x1, y1] = project(180, -90);
  ctx.fillStyle = "#eef3f7";
  ctx.fillRect(x0, y0, x1 - x0, y1 - y0);
  if (state.grid) {
    ctx.imageSmoothingEnabled = true;
    ctx.drawImage(state.grid, x0, y0, x1 - x0, y1 - y0);
  }
  ctx.strokeStyle = "rgba(40, 55, 70, 0.75)";
  ctx.lineWidth = 0.7;
  ctx.beginPath();
  for (const ring of state.rings) {
    ring.forEach(([lon, lat], i) => {
      const [x, y] = project(lon, lat);
      if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
    });
  }
  ctx.stroke();
  const r = state.result;
  if (!r) return;
  (r.top_k || []).forEach((m, i) => marker(m.lon, m.lat, String(i + 1), "#d7301f"));
  if (r.best_guess) marker(r.best_guess.lon, r.best_guess.lat, "\u2605", "#111");
}
function marker(lon, lat, label, colour) {
  const [x, y] = project(lon, lat);
  ctx.beginPath();
  ctx.arc(x, y, 9, 0, 2 * Math.PI);
  ctx.fillStyle = "rgba(255,255,255,0.9)";
  ctx.fill();
  ctx.lineWidth = 2;
  ctx.strokeStyle = colour;
  ctx.stroke();
  ctx.fillStyle = colour;
  ctx.font = "bold 11px system-ui, sans-serif";
  ctx.textAlign = "center";
  ctx.textBaseline = "middle";
  ctx.fillText(label, x, y + 0.5);
}

// ---- results -------------------------------------------------------------------------------------
const pct = (p) => (100 * p).toFixed(1) + "%";
function placeName(place) {
  if (!place) return "";
  return [place.name, place.admin1, place.country_code].filter(Boolean).join(", ");
}
function showResult(r) {
  state.result = r;
  state.grid = r.density ? densityImage(r.density) : null;
  const topk = $("topk");
  topk.replaceChildren();
  for (const m of r.top_k || []) {
    const li = document.createElement("li");
    li.dataset.lat = m.lat;
    li.dataset.lon = m.lon;
    li.dataset.probability = m.probability;
    li.dataset.radius = m.radius_km;
    li.innerHTML = `<span class="name"></span> <span class="p"></span>`;
    li.querySelector(".name").textContent = placeName(m.place) || `${m.lat.toFixed(2)}, ${m.lon.toFixed(2)}`;
    // The probability of being within radius_km of the place, not the mass of its basin.
    li.querySelector(".p").textContent = `${pct(m.probability)} within ${m.radius_km} km`;
    const within = Object.entries(m.within_km || {}).map(([km, p]) => `${pct(p)} within ${km} km`).join(", ");
    li.title = `${m.lat.toFixed(3)}, ${m.lon.toFixed(3)}: ${within}; ` +
      `basin of attraction (all places whose density climbs to this peak) ${pct(m.basin_probability)}`;
    li.addEventListener("click", () => { state.view = { lon0: m.lon, lat0: m.lat, k: canvas.width / 360 * 8 }; clampView(); draw(); });
    topk.appendChild(li);
  }
  const b = r.best_guess;
  $("best").textContent = b ? `\u2605 best guess: ${b.lat.toFixed(3)}, ${b.lon.toFixed(3)}` : "";
  const bars = $("countries");
  bars.replaceChildren();
  for (const c of r.countries || []) {
    const row = document.createElement("div");
    row.className = "bar";
    row.dataset.code = c.key;
    row.dataset.probability = c.probability;
    row.innerHTML = `<span class="label"></span><span class="track"><span class="fill"></span></span><span class="pct"></span>`;
    row.querySelector(".label").textContent = c.name;
    row.querySelector(".fill").style.width = pct(c.probability);
    row.querySelector(".pct").textContent = pct(c.probability);
    bars.appendChild(row);
  }
  const loc = r.localizability;
  $("localizability").textContent = loc ? `${loc.bits.toFixed(1)} bits` : "not available";
  $("localizability-note").textContent = loc
    ? `(as uncertain as a uniform region of ${Math.round(loc.effective_area_km2).toLocaleString("en")} km\u00b2)`
    : "(this model type has no exact density)";
  const regions = $("regions");
  regions.replaceChildren();
  for (const cr of r.credible_regions || []) {
    const li = document.createElement("li");
    li.textContent = `${Math.round(100 * cr.level)}%: ${Math.round(cr.area_km2).toLocaleString("en")} km\u00b2`;
    regions.appendChild(li);
  }
  const calib = (r.settings || {}).calibration;
  $("calibration-note").textContent = !r.credible_regions || !r.credible_regions.length ? "" : calib
    ? `Recalibrated on ${calib.rows.toLocaleString("en")} held-out photos (${calib.data}): each region held the ` +
      "true location that share of the time there."
    : "Not recalibrated: the model's own regions, which are over-confident on places unlike its training " +
      "photos (globeflow calibrate fixes that on held-out data).";
  $("calibration-note").dataset.calibrated = calib ? "1" : "0";
  showEvidence(r);
  const warn = $("warnings");
  warn.textContent = (r.warnings || []).join(" ");
  warn.hidden = !(r.warnings || []).length;
  $("results").hidden = false;
  $("facts").hidden = false;
  draw();
  canvas.dataset.ready = "1";
  canvas.dataset.renders = String(Number(canvas.dataset.renders || 0) + 1);
}

function showEvidence(r) {
  const ev = r.evidence || {};
  const list = $("contributions");
  list.replaceChildren();
  const contributions = ev.contributions || [];
  for (const c of contributions) {
    const li = document.createElement("li");
    li.dataset.source = c.source;
    li.dataset.bits = c.information_bits;
    li.dataset.contradicts = c.contradicts ? "1" : "0";
    li.classList.toggle("contradicts", c.contradicts);
    li.textContent = `${c.source}: ${c.information_bits.toFixed(1)} bits` +
      (c.contradicts ? " — contradicts the others" : "");
    list.appendChild(li);
  }
  $("evidence").hidden = !contributions.length;
  for (const li of document.querySelectorAll("#photos li")) {
    const c = contributions.find((x) => x.source === li.dataset.name);
    li.classList.toggle("contradicts", Boolean(c && c.contradicts));
    li.querySelector(".bits").textContent = c ? `+${c.information_bits.toFixed(1)} bits` : "";
  }
  // The prior mass: how much the model believed the allowed area before it was told.
  $("prior-mass").textContent = ev.prior_mass === undefined ? "" :
    `Before you said so, the model gave this area ${pct(ev.prior_mass)}` +
    (ev.prior_mass < 0.01 ? ": your constraint contradicts the photo." : ".");
  $("prior-mass").dataset.priorMass = ev.prior_mass === undefined ? "" : String(ev.prior_mass);
}

// ---- requests ------------------------------------------------------------------------------------
function fused() {
  return state.files.length > 1 && $("same-place").checked;
}
async function predict() {
  if (!state.files.length) return;
  if (state.busy) { state.pending = true; return; } // one request at a time; re-send the latest settings after
  state.busy = true;
  const photo = state.photo; // a reply to an earlier request is dropped (the latest is re-sent after)
  $("error").hidden = true;
  $("status").textContent = "Locating\u2026";
  const form = new FormData();
  const sent = fused() ? state.files : [state.files[state.selected]];
  for (const f of sent) form.append("image", f, f.name || "photo");
  form.append("guidance", $("guidance").value);
  form.append("seed", "0");
  if (state.within.length) form.append("within", state.within.join(","));
  if ($("on-land").checked) form.append("on_land", "1");
  try {
    const response = await fetch("/api/predict", { method: "POST", body: form });
    let body = null;
    try { body = await response.json(); } catch (e) { body = null; } // e.g. a proxy's HTML error page
    if (!response.ok || body === null) {
      throw new Error(body && body.error ? body.error.message : `the server answered HTTP ${response.status}`);
    }
    if (photo !== state.photo) return;
    showResult(body);
    const what = sent.length > 1 ? `${sent.length} photos fused` : (sent[0].name || "the photo");
    $("status").textContent = `${what}: answered in ${body.seconds.toFixed(1)} s (guidance ${body.settings ? body.settings.guidance : $("guidance").value}).`;
  } catch (err) {
    if (photo !== state.photo) return;
    $("status").textContent = "";
    $("error").textContent = err.message;
    $("error").hidden = false;
  } finally {
    state.busy = false;
    if (state.pending) { state.pending = false; predict(); }
  }
}
function again() {
  // A new request replaces whatever is in flight (its reply is dropped).
  if (state.busy) state.pending = true;
  state.photo += 1;
  predict();
}
function showPhotos() {
  const list = $("photos");
  list.replaceChildren();
  state.files.forEach((f, i) => {
    const li = document.createElement("li");
    li.dataset.name = f.name || "photo";
    li.dataset.index = String(i);
    li.classList.toggle("selected", !fused() && i === state.selected);
    li.innerHTML = `<img alt=""><span class="cap"></span><span class="cap bits"></span>`;
    li.querySelector("img").src = URL.createObjectURL(f);
    li.querySelector(".cap").textContent = li.dataset.name;
    li.addEventListener("click", () => {
      if (fused()) $("same-place").checked = false; // looking at one photo: its own answer
      state.selected = i;
      showPhotos();
      again();
    });
    list.appendChild(li);
  });
  $("photos-box").hidden = state.files.length < 2;
  $("photos-hint").textContent = fused() ? "One answer for all photos; click a photo to see its own."
    : "Each photo's own answer: click one to see it.";
}
function chooseFiles(files) {
  const chosen = Array.from(files || []).filter(Boolean);
  if (!chosen.length) return;
  state.files = chosen;
  state.selected = 0;
  const img = $("photo");
  img.src = URL.createObjectURL(chosen[0]);
  img.hidden = chosen.length > 1;
  $("drop-text").textContent = chosen.length > 1 ? `${chosen.length} photos` : chosen[0].name;
  showPhotos();
  again();
}

// ---- what the user knows: countries ----------------------------------------------------------------
function showChips() {
  const chips = $("constraint-chips");
  chips.replaceChildren();
  for (const code of state.within) {
    const li = document.createElement("li");
    li.dataset.code = code;
    li.textContent = state.countries[code] || code;
    const x = document.createElement("button");
    x.type = "button";
    x.title = "remove";
    x.textContent = "×";
    x.addEventListener("click", () => { state.within = state.within.filter((c) => c !== code); showChips(); again(); });
    li.appendChild(x);
    chips.appendChild(li);
  }
}
function addCountry() {
  const text = $("country-input").value.trim();
  if (!text) return;
  const upper = text.toUpperCase();
  const code = state.countries[upper] ? upper
    : Object.keys(state.countries).find((c) => state.countries[c].toLowerCase() === text.toLowerCase());
  if (!code) {
    $("error").textContent = `unknown country: ${text}`;
    $("error").hidden = false;
    return;
  }
  $("country-input").value = "";
  if (!state.within.includes(code)) state.within.push(code);
  showChips();
  again();
}

// ---- wiring --------------------------------------------------------------------------------------
$("file").addEventListener("change", (e) => chooseFiles(e.target.files));
const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); chooseFiles(e.dataTransfer.files); });
$("same-place").addEventListener("change", () => { showPhotos(); again(); });
$("on-land").addEventListener("change", again);
$("country-add").addEventListener("click", addCountry);
$("country-input").addEventListener("keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); addCountry(); } });
$("guidance").addEventListener("input", (e) => { $("guidance-value").textContent = e.target.value; });
$("guidance").addEventListener("change", predict);
canvas.addEventListener("wheel", (e) => {
  e.preventDefault();
  if (e.deltaY === 0) return; // a sideways scroll: no zoom
  const rect = canvas.getBoundingClientRect(), s = canvas.width / rect.width;
  zoomAt((e.clientX - rect.left) * s, (e.clientY - rect.top) * s, e.deltaY < 0 ? 1.25 : 0.8);
}, { passive: false });
let drag = null;
canvas.addEventListener("mousedown", (e) => { drag = [e.clientX, e.clientY]; canvas.classList.add("dragging"); });
window.addEventListener("mouseup", () => { drag = null; canvas.classList.remove("dragging"); });
window.addEventListener("mousemove", (e) => {
  if (!drag) return;
  const rect = canvas.getBoundingClientRect(), s = canvas.width / rect.width;
  state.view.lon0 -= (e.clientX - drag[0]) * s / state.view.k;
  state.view.lat0 += (e.clientY - drag[1]) * s / state.view.k;
  drag = [e.clientX, e.clientY];
  clampView();
  draw();
});
canvas.addEventListener("dblclick", (e) => {
  const rect = canvas.getBoundingClientRect(), s = canvas.width / rect.width;
  zoomAt((e.clientX - rect.left) * s, (e.clientY - rect.top) * s, 2);
});
$("zoom-in").addEventListener("click", () => zoomAt(canvas.width / 2, canvas.height / 2, 1.5));
$("zoom-out").addEventListener("click", () => zoomAt(canvas.width / 2, canvas.height / 2, 1 / 1.5));
$("zoom-reset").addEventListener("click", () => { state.view = wholeWorld(); draw(); });

state.view = wholeWorld();
draw();
fetch("/api/health").then((r) => r.json()).then((h) => {
  const m = h.model;
  $("model-info").textContent = `model ${m.name} (${m.kind}), encoder ${m.encoder}` + (m.density ? "" : ", no exact density");
  $("guidance").max = String(Math.min(5, h.limits.max_guidance));
}).catch(() => { $("model-info").textContent = "model: unknown (health check failed)"; });
fetch("/assets/countries.json").then((r) => r.json()).then((c) => {
  const list = $("country-list");
  for (const { code, name } of c.countries) {
    state.countries[code] = name;
    const o = document.createElement("option");
    o.value = name;
    o.label = code;
    list.appendChild(o);
  }
});
fetch("/assets/world.json").then((r) => r.json()).then((w) => { state.rings = w.rings; draw(); });
