// luftnett dashboard. Plain JS, no CDN. User-supplied text (site and device names) goes in
// through textContent only, never innerHTML.
"use strict";
const SVGNS = "http://www.w3.org/2000/svg";
const API = "/api/v1";
const OSLO = "Europe/Oslo";
const state = { index: null, device: null, profiles: [], maps: [] };

function el(tag, attrs = {}, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}
function svg(tag, attrs = {}, text) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}
async function getJSON(url) {
  const r = await fetch(url);
  const body = await r.json();
  if (!r.ok) throw new Error(body.detail || r.statusText);
  return body;
}
const fmt = (x, d = 1) => (x === null || x === undefined ? "–" : Number(x).toFixed(d).replace(".", ","));

// --- tabs -------------------------------------------------------------------------------
for (const b of document.querySelectorAll("nav button")) {
  b.addEventListener("click", () => {
    for (const o of document.querySelectorAll("nav button")) o.classList.toggle("active", o === b);
    for (const t of document.querySelectorAll(".tab")) t.hidden = t.id !== `tab-${b.dataset.tab}`;
    if (b.dataset.tab === "exposed") loadExposed();
    if (b.dataset.tab === "downloads") loadDownloads();
    if (b.dataset.tab === "health") { loadHealth(); loadFleetLedger(); }
  });
}

// --- map --------------------------------------------------------------------------------
// Exposure maps from `luftnett map build` (GET /maps): the newest is drawn under the sites.
async function loadLayers() {
  let maps = [];
  try { maps = (await getJSON(`${API}/maps`)).maps; } catch (e) { maps = []; }
  state.maps = maps;
  const box = document.getElementById("layer-box");
  box.hidden = !maps.length;
  const sel = document.getElementById("layer-map");
  const keep = sel.value;
  sel.replaceChildren(...maps.map((m) => el("option", { value: m.map_id }, `${m.pollutant} ${m.period ? m.period.label : ""} (${m.method})`)));
  if (maps.some((m) => m.map_id === keep)) sel.value = keep;
}
function currentLayer() {
  if (!state.maps || !state.maps.length || !document.getElementById("layer-on").checked) return null;
  const id = document.getElementById("layer-map").value;
  return state.maps.find((m) => m.map_id === id) || state.maps[0];
}
function drawLayerLegend(m) {
  const legend = document.getElementById("layer-legend"), attr = document.getElementById("layer-attr");
  if (!m) { legend.replaceChildren(); attr.textContent = ""; return; }
  const stops = m.scale.stops.map((s, i) => `${s.color} ${(100 * i / Math.max(1, m.scale.stops.length - 1)).toFixed(0)}%`).join(", ");
  const ramp = el("span", { class: "ramp" }); ramp.style.background = `linear-gradient(to right, ${stops})`;
  legend.replaceChildren(el("span", {}, fmt(m.scale.min)), ramp, el("span", {}, `${fmt(m.scale.max)} ${m.unit || ""}`));
  const cv = m.loocv && m.loocv.rmse !== null && m.loocv.rmse !== undefined ? ` · LOOCV RMSE ${fmt(m.loocv.rmse, 2)} ${m.unit || ""}` : "";
  attr.textContent = `Kart/map: luftnett map build, ${m.method}, ${m.statistic || "mean"} ${m.period ? m.period.label : ""}, ${m.sites_used ?? "?"} målestasjoner/sites${cv}. ${m.label || "indikativ – mikrosensor / indicative – microsensor"}.`;
}

async function loadMap() {
  const data = await getJSON(`${API}/index/latest`);
  state.index = data;
  await loadLayers();
  const layer = currentLayer();
  drawLayerLegend(layer);
  const map = document.getElementById("map");
  const sites = data.devices.filter((d) => d.site && d.site.lat !== null && d.site.lon !== null);
  map.replaceChildren();
  const W = 600, H = 420, pad = 40;
  if (!sites.length && !layer) {
    map.appendChild(svg("text", { x: 20, y: 30 }, "Ingen målestasjoner med posisjon / no sites with a position"));
    return;
  }
  const lats = sites.map((d) => d.site.lat), lons = sites.map((d) => d.site.lon);
  if (layer) { lats.push(layer.bounds[0][0], layer.bounds[1][0]); lons.push(layer.bounds[0][1], layer.bounds[1][1]); }
  const lat0 = Math.min(...lats), lat1 = Math.max(...lats), lon0 = Math.min(...lons), lon1 = Math.max(...lons);
  const kx = Math.cos(((lat0 + lat1) / 2) * Math.PI / 180);
  const spanX = Math.max((lon1 - lon0) * kx, 1e-3), spanY = Math.max(lat1 - lat0, 1e-3);
  const s = Math.min((W - 2 * pad - 110) / spanX, (H - 2 * pad) / spanY);
  const cx = (W - 110 - spanX * s) / 2, cy = (H - spanY * s) / 2;
  const project = (lat, lon) => [cx + (lon - lon0) * kx * s, H - (cy + (lat - lat0) * s)];
  map.appendChild(svg("text", { x: 8, y: H - 8 }, `${lat0.toFixed(3)}–${lat1.toFixed(3)} N, ${lon0.toFixed(3)}–${lon1.toFixed(3)} E`));
  if (layer) {
    // the PNG's pixels are equally spaced in Web Mercator; over a town this differs from the
    // plate carrée drawing here by far less than a pixel
    const [[s0, w0], [n0, e0]] = layer.bounds;
    const [x0, y0] = project(n0, w0), [x1, y1] = project(s0, e0);
    map.appendChild(svg("image", { href: layer.files.layer_png, x: x0.toFixed(1), y: y0.toFixed(1), width: (x1 - x0).toFixed(1), height: (y1 - y0).toFixed(1), preserveAspectRatio: "none", opacity: layer.opacity ?? 0.7, class: "exposure-layer", "data-map": layer.map_id }));
  }
  for (const d of sites) {
    const [x, y] = project(d.site.lat, d.site.lon);
    const colour = d.overall ? d.overall.color : "#9aa5ab";
    const c = svg("circle", { cx: x.toFixed(1), cy: y.toFixed(1), r: 11, fill: colour, class: "site", "data-device": d.device_id, "data-site": d.site.site_id, tabindex: 0, role: "button", "aria-label": d.site.name });
    c.appendChild(svg("title", {}, `${d.site.name} (${d.site.site_type}) – ${d.overall ? d.overall.label_no : "ingen data"}`));
    c.addEventListener("click", () => openSite(d.device_id));
    c.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); openSite(d.device_id); } });
    map.appendChild(c);
    map.appendChild(svg("text", { x: (x + 14).toFixed(1), y: (y + 4).toFixed(1) }, d.site.name));
  }
  const legend = document.getElementById("legend");
  const seen = new Map();
  for (const c of data.classes) if (!seen.has(c.class)) seen.set(c.class, c);
  legend.replaceChildren(...[...seen.values()].map((c) => {
    const span = el("span"); const i = el("i"); i.style.background = c.color;
    span.append(i, document.createTextNode(`${c.label_no} / ${c.label_en}`)); return span;
  }));
}

// --- site panel -------------------------------------------------------------------------
async function openSite(deviceId) {
  state.device = deviceId;
  for (const c of document.querySelectorAll("#map circle.site")) c.classList.toggle("selected", c.dataset.device === deviceId);
  const d = state.index.devices.find((x) => x.device_id === deviceId);
  const panel = document.getElementById("panel");
  panel.hidden = false;
  document.getElementById("site-name").textContent = d.site ? d.site.name : deviceId;
  document.getElementById("site-meta").textContent = `${d.site ? d.site.site_type : ""} · enhet/device ${deviceId} · siste time/latest hour ${d.hour_start ? `${osloText(d.hour_start)} (norsk tid / Oslo time)` : "–"}`;
  const box = document.getElementById("site-index");
  box.replaceChildren();
  if (d.overall) {
    box.style.borderLeftColor = d.overall.color;
    box.append(el("strong", {}, `${d.overall.label_no} / ${d.overall.label_en}`), el("div", {}, d.overall.advice_no), el("div", { lang: "en" }, d.overall.advice_en));
  } else {
    box.style.borderLeftColor = "#aaa";
    box.append(el("span", {}, "Ingen data siste time / no data in the latest hour"));
  }
  // each section clears until its own answer arrives, drops an answer for a site no longer
  // open (clicks faster than the server), and says so where its request failed
  await Promise.all([
    section("chart", deviceId, () => drawChart(deviceId)),
    section("exceed-note", deviceId, () => loadExceedances()),
    section("completeness-note", deviceId, () => drawCompleteness(deviceId)),
    section("ledger-note", deviceId, () => loadLedger(deviceId)),
    section("ann-list-note", deviceId, () => loadAnnotations(deviceId)),
  ]);
}

// a section of the site panel: its loader, and a bilingual message in `noteId` if it fails
// while its site is still the open one
async function section(noteId, deviceId, load) {
  const note = document.getElementById(noteId);
  if (note && note.classList.contains("load-error")) { note.classList.remove("load-error"); note.textContent = ""; }
  try {
    await load();
  } catch (e) {
    if (state.device !== deviceId || !note) return;
    note.classList.add("load-error");
    note.textContent = `Kunne ikke hente data – prøv igjen om litt / could not load the data – try again shortly (${e.message})`;
  }
}
// an answer for a site that is no longer open is dropped
const stale = (deviceId) => state.device !== deviceId;

async function drawChart(deviceId) {
  const box = document.getElementById("chart");
  box.replaceChildren(el("span", {}, "…"));
  const q = "quantity=pm25_ugm3&quantity=pm10_ugm3";
  const raw = await getJSON(`${API}/devices/${encodeURIComponent(deviceId)}/aggregates/hourly?${q}`);
  let cal = null;
  try { cal = await getJSON(`${API}/devices/${encodeURIComponent(deviceId)}/aggregates/hourly?${q}&source=calibrated`); } catch (e) { cal = null; }
  const profile = await getJSON(`${API}/profiles/${document.getElementById("profile").value || "eu-2008-50"}`);
  if (stale(deviceId)) return;
  const W = 640, H = 260, L = 44, R = 10, T = 16, B = 28;
  const series = [];
  const colours = { pm25_ugm3: "#1f77b4", pm10_ugm3: "#d62728" };
  for (const [src, body] of [["rå/raw", raw], ["kalibrert/calibrated", cal]]) {
    if (!body) continue;
    for (const qn of ["pm25_ugm3", "pm10_ugm3"]) {
      const pts = body.rows.filter((r) => r.quantity === qn && r.mean !== null).map((r) => [Date.parse(r.start), r.mean]);
      if (pts.length) series.push({ name: `${qn === "pm25_ugm3" ? "PM2,5" : "PM10"} ${src}`, pts, colour: colours[qn], dash: src.startsWith("k") ? "5 3" : null });
    }
  }
  const limits = profile.entries.filter((e) => e.averaging_period === "24h" && (e.pollutant === "PM10" || e.pollutant === "PM2.5") && (e.level === null || e.level === "AQG"));
  const t0 = Date.parse(raw.start), t1 = Date.parse(raw.end);
  const ymax = Math.max(10, ...series.flatMap((s) => s.pts.map((p) => p[1])), ...limits.map((l) => l.value_ugm3)) * 1.1;
  const X = (t) => L + (t - t0) / (t1 - t0) * (W - L - R), Y = (v) => H - B - v / ymax * (H - T - B);
  const g = svg("svg", { viewBox: `0 0 ${W} ${H}`, "data-series": series.length });
  g.appendChild(svg("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: "#333" }));
  g.appendChild(svg("line", { x1: L, y1: T, x2: L, y2: H - B, stroke: "#333" }));
  for (let i = 0; i <= 4; i++) {
    const v = ymax * i / 4;
    g.appendChild(svg("text", { x: 4, y: Y(v) + 4, "font-size": 10 }, fmt(v, 0)));
  }
  g.appendChild(svg("text", { x: 4, y: 10, "font-size": 10, class: "unit" }, "µg/m³ (timemiddel / hourly mean)"));
  // a tick at each Oslo midnight (the staff's days), labelled with the Oslo date
  for (let t = Math.ceil(t0 / 3600000) * 3600000; t < t1; t += 3600000) {
    const local = t + osloOffsetMs(t);
    if (local % 86400000 !== 0) continue;
    g.appendChild(svg("line", { x1: X(t), x2: X(t), y1: H - B, y2: H - B + 4, stroke: "#333", class: "day-tick" }));
    g.appendChild(svg("text", { x: X(t) - 12, y: H - 10, "font-size": 10 }, new Date(local).toISOString().slice(5, 10).split("-").reverse().join(".")));
  }
  for (const l of limits) {
    g.appendChild(svg("line", { x1: L, x2: W - R, y1: Y(l.value_ugm3), y2: Y(l.value_ugm3), stroke: l.pollutant === "PM10" ? "#d62728" : "#1f77b4", "stroke-dasharray": "2 4", class: "limit" }));
    g.appendChild(svg("text", { x: W - R - 210, y: Y(l.value_ugm3) - 3, "font-size": 10 }, `${l.pollutant.replace(".", ",")} ${l.level === "AQG" ? "døgnanbefaling / 24-h guideline" : "døgngrense / 24-h limit"} ${fmt(l.value_ugm3, 0)} µg/m³`));
  }
  const HOUR = 3600000;
  for (const s of series) {
    // a line joins consecutive hours only: a gap (an hour without a valid mean) breaks it,
    // and an hour with no neighbour is drawn as a dot (a one-point line draws nothing)
    const joined = s.pts.map((p, i) => i > 0 && p[0] - s.pts[i - 1][0] <= HOUR);  // to the one before
    const d = s.pts.map((p, i) => `${joined[i] ? "L" : "M"}${X(p[0]).toFixed(1)},${Y(p[1]).toFixed(1)}`).join("");
    const attrs = { d, fill: "none", stroke: s.colour, "stroke-width": 1.5, class: "series" };
    if (s.dash) attrs["stroke-dasharray"] = s.dash;
    g.appendChild(svg("path", attrs));
    s.pts.forEach((p, i) => {
      if (!joined[i] && !joined[i + 1]) g.appendChild(svg("circle", { cx: X(p[0]).toFixed(1), cy: Y(p[1]).toFixed(1), r: 2.5, fill: s.dash ? "#fff" : s.colour, stroke: s.colour, class: "point" }));
    });
  }
  const legend = el("div", { class: "legend" });
  for (const s of series) { const span = el("span"); const i = el("i"); i.style.background = s.colour; span.append(i, document.createTextNode(s.name)); legend.appendChild(span); }
  if (!cal) legend.appendChild(el("span", {}, "Ingen kalibrering ennå / no calibration yet"));
  box.replaceChildren(g, legend);
}

const PERIODS = { "1h": "time / hour", "8h": "8 timer / 8 h", "24h": "døgn / day", "1y": "år / year", "winter": "vinter / winter" };
// levels and kinds of limits.json's entries (WHO interim targets IT-1..4 as they are)
const LEVELS = {
  "limit value": "grenseverdi / limit value", "target": "målverdi / target value",
  "alert threshold": "varslingsterskel / alert threshold", "guideline": "anbefaling / guideline",
  "AQG": "WHO-anbefaling / WHO guideline", "interim target": "delmål / interim target",
  "assessment criterion": "vurderingsterskel / assessment criterion", "index class": "indeksklasse / index class",
};
async function loadExceedances() {
  if (!state.device) return;
  const p = document.getElementById("profile").value, y = document.getElementById("year").value;
  const body = document.querySelector("#exceed tbody");
  body.replaceChildren(el("tr", {}, "…"));
  const asked = state.device;
  const data = await getJSON(`${API}/devices/${encodeURIComponent(asked)}/exceedances?profile=${p}&year=${y}`);
  if (stale(asked)) return;
  const label = { exceeded: "overskredet / exceeded", not_exceeded: "ikke overskredet / not exceeded", insufficient_data: "for lite data / insufficient data" };
  body.replaceChildren(...data.entries.map((e) => {
    const tr = el("tr");
    const cells = [e.pollutant.replace(".", ","), PERIODS[e.averaging_period] || e.averaging_period, LEVELS[e.level || e.kind] || e.level || e.kind, fmt(e.value_ugm3, e.value_ugm3 % 1 ? 1 : 0), e.averaging_period === "1y" ? `${fmt(e.annual_mean_ugm3)} (middel / mean)` : e.count, e.allowed_exceedances_per_year ?? "–", fmt(e.coverage_pct)];
    cells.forEach((c, i) => tr.appendChild(el("td", i >= 3 ? { class: "num" } : {}, c)));
    tr.appendChild(el("td", { class: `status-${e.status}` }, label[e.status] || e.status));
    return tr;
  }));
  const note = document.getElementById("exceed-note");
  const source = el("a", { href: data.profile.source_url, target: "_blank", rel: "noopener" }, "kilde / source");
  note.replaceChildren(`${data.note_no} `, el("span", { lang: "en" }, `${data.label}. ${data.note} `), source);
}

async function drawCompleteness(deviceId) {
  const box = document.getElementById("completeness");
  box.replaceChildren();
  const data = await getJSON(`${API}/devices/${encodeURIComponent(deviceId)}/aggregates/daily?quantity=pm10_ugm3`);
  if (stale(deviceId)) return;
  box.replaceChildren(...data.rows.map((r) => {
    const pct = r.coverage.pct_complete || 0;
    const d = el("div", { class: r.valid ? "" : "invalid", title: `${r.period}: ${fmt(pct)} %` });
    d.style.height = `${Math.max(1, pct)}%`;
    return d;
  }));
}

// --- completeness ledger: "we lost nothing" per day (GET /ledger?days=7, Oslo days) --------
// missing seq ranges as text: "5–7, 50" (a single seq once), the first `most` of them
const seqRanges = (ranges, most = ranges.length) =>
  ranges.slice(0, most).map(([lo, hi]) => (lo === hi ? `${lo}` : `${lo}–${hi}`)).join(", ");

async function loadLedger(deviceId) {
  const body = document.querySelector("#ledger tbody");
  body.replaceChildren();
  const r = await getJSON(`${API}/ledger?device=${encodeURIComponent(deviceId)}&days=7`);
  if (stale(deviceId)) return;
  body.replaceChildren(...r.devices.slice().reverse().map((e) => {  // newest day first
    const tr = el("tr", { "data-day": e.day });
    tr.append(el("td", {}, e.day));
    for (const k of ["sent", "stored", "missing", "duplicates", "late"]) {
      const td = el("td", { class: k === "missing" && e.missing > 0 ? "num lost" : "num" }, e[k]);
      if (k === "missing" && e.missing_ranges.length) td.title = `seq ${seqRanges(e.missing_ranges)}`;
      tr.append(td);
    }
    return tr;
  }));
}

// --- staff annotations ------------------------------------------------------------------
// Staff enter Oslo wall-clock times; the API takes aware times, so each is turned into UTC
// with Oslo's offset at that moment (twice: the offset can change at a DST step in between).
function osloOffsetMs(utcMs) {
  const parts = new Intl.DateTimeFormat("en-GB", { timeZone: OSLO, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" }).formatToParts(new Date(utcMs));
  const v = Object.fromEntries(parts.map((x) => [x.type, Number(x.value)]));
  return Date.UTC(v.year, v.month - 1, v.day, v.hour, v.minute, v.second) - utcMs;
}
function osloToUtc(local) {
  const wall = Date.parse(`${local}:00Z`);
  let t = wall - osloOffsetMs(wall);
  t = wall - osloOffsetMs(t);
  return new Date(t).toISOString();
}
const osloText = (iso) => new Date(iso).toLocaleString("nb-NO", { timeZone: OSLO, dateStyle: "short", timeStyle: "short" });
const KINDS = { maintenance: "vedlikehold / maintenance", roadworks: "veiarbeid / roadworks", fireworks: "fyrverkeri / fireworks", fog: "tåke / fog", other: "annet / other" };
function staffHeaders() {
  const key = document.getElementById("ann-key").value;
  sessionStorage.setItem("luftnett-api-key", key);
  localStorage.setItem("luftnett-staff-name", document.getElementById("ann-by").value);
  return { "Content-Type": "application/json", "X-API-Key": key };
}
function annStatus(text, error = false) {
  const p = document.getElementById("ann-status");
  p.textContent = text;
  p.classList.toggle("error", error);
}
async function sendJSON(url, doc) {
  const r = await fetch(url, { method: "POST", headers: staffHeaders(), body: JSON.stringify(doc) });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.detail || r.statusText);
  return body;
}
async function loadAnnotations(deviceId) {
  const list = document.getElementById("annotations");
  list.replaceChildren();
  const data = await getJSON(`${API}/annotations?device=${encodeURIComponent(deviceId)}`);
  if (stale(deviceId)) return;
  if (!data.annotations.length) {
    list.replaceChildren(el("li", { class: "none" }, "Ingen merknader / no annotations"));
    return;
  }
  list.replaceChildren(...data.annotations.map((a) => {
    const li = el("li", { "data-annotation": a.annotation_id, class: a.active ? "active" : "revoked" });
    li.append(el("strong", {}, KINDS[a.kind] || a.kind), ` ${osloText(a.starts_at)} – ${osloText(a.ends_at)} `);
    if (a.invalidates && a.active) li.append(el("span", { class: "invalidates" }, "ugyldiggjør målinger / invalidates readings"));
    else if (a.invalidates) li.append(el("span", {}, "(ugyldiggjorde målinger til den ble trukket tilbake / invalidated readings until revoked)"));
    li.append(el("div", {}, a.reason));
    if (!a.active) {
      li.append(el("div", { class: "meta" }, `trukket tilbake / revoked ${osloText(a.revoked_at)}: ${a.revoke_reason || ""}`));
      return li;
    }
    const why = el("input", { type: "text", placeholder: "begrunnelse / reason", "aria-label": "begrunnelse / reason", maxlength: "1000" });
    const button = el("button", { type: "button", class: "revoke" }, "Trekk tilbake / revoke");
    button.addEventListener("click", async () => {
      if (!why.value.trim()) {
        annStatus("Ikke trukket tilbake: skriv hvorfor / not revoked: say why (the reason)", true);
        why.focus();
        return;
      }
      try {
        await sendJSON(`${API}/annotations/${a.annotation_id}/revoke`, { reason: why.value, by: document.getElementById("ann-by").value });
        annStatus(`Merknad ${a.annotation_id} trukket tilbake / annotation ${a.annotation_id} revoked`);
        await afterAnnotation(deviceId);
      } catch (e) { annStatus(`Ikke trukket tilbake / not revoked: ${e.message}`, true); }
    });
    li.append(el("div", {}, ""), why, button);
    return li;
  }));
}
async function afterAnnotation(deviceId) {
  await Promise.all([loadAnnotations(deviceId), drawChart(deviceId), drawCompleteness(deviceId)]);
}
document.getElementById("ann-key").value = sessionStorage.getItem("luftnett-api-key") || "";
document.getElementById("ann-by").value = localStorage.getItem("luftnett-staff-name") || "";
document.getElementById("ann-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const deviceId = state.device;
  if (!deviceId) return;
  const every = document.getElementById("ann-all").checked;
  // the mistakes staff make most, said in their words before anything is sent
  const from = document.getElementById("ann-start").value, to = document.getElementById("ann-end").value;
  if (from && to && to <= from) {
    annStatus("Ikke lagret: slutten må være etter starten / not saved: the end must be after the start", true);
    return;
  }
  if (!document.getElementById("ann-reason").value.trim()) {
    annStatus("Ikke lagret: skriv hvorfor / not saved: say why (the reason)", true);
    return;
  }
  const doc = {
    ...(every ? { device_ids: [...document.querySelectorAll("#map circle.site")].map((c) => c.dataset.device) } : { device_id: deviceId }),
    starts_at: osloToUtc(document.getElementById("ann-start").value),
    ends_at: osloToUtc(document.getElementById("ann-end").value),
    kind: document.getElementById("ann-kind").value,
    reason: document.getElementById("ann-reason").value,
    by: document.getElementById("ann-by").value,
    invalidates: document.getElementById("ann-invalidate").checked,
  };
  try {
    const a = await sendJSON(`${API}/annotations`, doc);
    if (every) annStatus(`${a.count} merknader lagret, én per enhet / ${a.count} annotations saved, one per device`);
    else if (a.invalidates) annStatus(`Merknad ${a.annotation_id} lagret: ${a.readings} målinger tas ut av statistikken / annotation ${a.annotation_id} saved: ${a.readings} readings leave the statistics`);
    else annStatus(`Merknad ${a.annotation_id} lagret (${a.readings} målinger i perioden) / annotation ${a.annotation_id} saved (${a.readings} readings in the period)`);
    document.getElementById("ann-all").checked = false;
    document.getElementById("ann-reason").value = "";
    await afterAnnotation(deviceId);
  } catch (e) { annStatus(`Ikke lagret / not saved: ${e.message}`, true); }
});

async function loadProfiles() {
  const data = await getJSON(`${API}/profiles`);
  const sel = document.getElementById("profile");
  sel.replaceChildren(...data.profiles.map((p) => el("option", { value: p.id }, p.title)));
  const ys = document.getElementById("year");
  const now = new Date().getUTCFullYear();
  ys.replaceChildren(...[0, 1, 2].map((k) => el("option", { value: now - k }, now - k)));
  sel.addEventListener("change", () => { loadExceedances(); if (state.device) drawChart(state.device); });
  ys.addEventListener("change", loadExceedances);
}

// --- most exposed -----------------------------------------------------------------------
async function loadExposed() {
  const q = document.getElementById("exp-q").value, days = document.getElementById("exp-days").value;
  const data = await getJSON(`${API}/exposure?quantity=${q}&days=${days}`);
  const list = document.getElementById("exposed");
  list.replaceChildren(...data.sites.map((s) => {
    const li = el("li");
    li.append(el("div", { lang: "nb" }, s.text_no), el("div", { lang: "en", class: "en" }, s.text_en));
    return li;
  }));
  document.getElementById("exposed-note").textContent = `${data.indicative_note_no} ${data.indicative_note_en}`;
  await loadAreas();
}

// Areas and receptors ranked on the newest exposure map (ranking.json of `luftnett map build`).
const VERDICT = {
  "above": ["over", "above"], "probably above": ["sannsynligvis over", "probably above"],
  "possibly above": ["kanskje over", "possibly above"], "below": ["under", "below"], "unknown": ["ukjent", "unknown"],
};
async function loadAreas() {
  const box = document.getElementById("areas-box");
  if (!state.maps.length) await loadLayers();
  // the newest map of the pollutant chosen above (pm25_ugm3 -> pm25, no2_ppb -> no2)
  const code = document.getElementById("exp-q").value.replace(/_(ugm3|ppb)$/, "");
  const m = state.maps.find((x) => x.pollutant === code);
  if (!m || !m.files.ranking_json) { box.hidden = true; return; }
  let ranking;
  try { ranking = await getJSON(m.files.ranking_json); } catch (e) { box.hidden = true; return; }
  box.hidden = false;
  document.getElementById("areas-map").textContent = `${m.pollutant}, ${m.statistic || "mean"} ${m.period ? m.period.label : ""} (${m.method}); 95 % = verdi ± 1,96 se / value ± 1.96 se. ${ranking.label || ""}`;
  const unit = ranking.unit || "";
  document.getElementById("areas").replaceChildren(...ranking.areas.slice(0, 5).map((a) => {
    const li = el("li");
    const g = (a.guidelines || []).find((v) => v.verdict !== "below") || (a.guidelines || [])[0];
    const [no, en] = g ? (VERDICT[g.verdict] || [g.verdict, g.verdict]) : ["", ""];
    const ci = `${fmt(a.ci95[0])}–${fmt(a.ci95[1])}`;
    li.append(
      el("div", { lang: "nb" }, `${a.name}: ${fmt(a.value)} ${unit} (95 %: ${ci})${g ? ` – ${no} ${g.regime} ${fmt(g.guideline)} ${unit}` : ""}.`),
      el("div", { lang: "en", class: "en" }, `${a.name}: ${fmt(a.value)} ${unit} (95 %: ${ci})${g ? ` – ${en} ${g.regime} ${fmt(g.guideline)} ${unit}` : ""}.`),
    );
    return li;
  }));
}
document.getElementById("exp-q").addEventListener("change", loadExposed);
document.getElementById("exp-days").addEventListener("change", loadExposed);

// --- device status (GET /devices/health: only the devices that need attention) ----------
const PROBLEMS = {
  silent: ["stille: ingen kontakt", "silent: no contact"],
  stuck: ["står fast: samme verdi om og om igjen", "stuck: the same value again and again"],
  sensor_error: ["sensorfeil", "sensor fault"],
  clock_suspect: ["usikker klokke", "clock suspect"],
  seq_reused: ["nummereringen startet på nytt: målinger i karantene", "numbering restarted: readings in quarantine"],
  sensor_silent: ["en sensor er stille mens boksen sender", "a sensor is silent while the box reports"],
};
function ago(s) {
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  if (s < 172800) return `${Math.round(s / 3600)} t/h`;
  return `${Math.round(s / 86400)} d`;
}
async function loadHealth() {
  const list = document.getElementById("health"), note = document.getElementById("health-note");
  let body;
  try { body = await getJSON(`${API}/devices/health`); } catch (e) {
    note.textContent = `Kunne ikke hente status / could not load the status: ${e.message}`;
    return;
  }
  const devices = body.devices;
  note.textContent = devices.length
    ? `${devices.length} sensorer trenger tilsyn / ${devices.length} sensors need attention`
    : "Alle sensorer i orden / all sensors are fine";
  list.replaceChildren(...devices.map((d) => {
    const li = el("li", { "data-device": d.device_id });
    li.append(el("strong", {}, d.device_id), ` (${d.sensor_model})`);
    for (const p of d.problems) {
      const [nb, en] = PROBLEMS[p] || [p, p];
      const row = el("div", { class: "problem", "data-problem": p }, nb);
      row.append(" / ", el("span", { class: "en", lang: "en" }, en));
      li.append(row);
    }
    for (const s of d.silent_sensors || []) {
      const last = new Date(s.last_reading_ts).toLocaleString("nb-NO", { timeZone: "Europe/Oslo" });
      li.append(el("div", { class: "meta", "data-sensor": s.model },
        `${s.model}${s.serial ? " " + s.serial : ""}: siste måling / last reading ${last}`));
    }
    const seen = new Date(d.last_seen).toLocaleString("nb-NO", { timeZone: "Europe/Oslo" });
    li.append(el("div", { class: "meta" }, `sist hørt fra / last heard from: ${seen} (${ago(d.silent_for_s)})`));
    return li;
  }));
}

// --- the whole network's ledger, yesterday and today (GET /ledger?days=2, Oslo days) -------
async function loadFleetLedger() {
  const body = document.querySelector("#fleet-ledger tbody");
  const list = document.getElementById("fleet-missing"), note = document.getElementById("fleet-note");
  let r;
  try { r = await getJSON(`${API}/ledger?days=2`); } catch (e) {
    note.textContent = `Kunne ikke hente regnskapet / could not load the ledger: ${e.message}`;
    return;
  }
  const n = (x) => Number(x).toLocaleString("nb-NO");
  const days = [r.day, r.first_day];  // today first
  body.replaceChildren(...days.map((day) => {
    const es = r.devices.filter((e) => e.day === day);
    const sum = (k) => es.reduce((a, e) => a + e[k], 0);
    const tr = el("tr", { "data-day": day });
    tr.append(el("td", {}, day === r.day ? `${day} (i dag / today)` : day));
    tr.append(el("td", { class: "num" }, n(es.length)));
    for (const k of ["sent", "stored", "missing", "duplicates"]) {
      tr.append(el("td", { class: k === "missing" && sum(k) > 0 ? "num lost" : "num", "data-key": k }, n(sum(k))));
    }
    return tr;
  }));
  const lossy = r.devices.filter((e) => e.missing > 0).sort((a, b) => b.missing - a.missing);
  list.replaceChildren(...lossy.slice(0, 20).map((e) => {
    const ranges = seqRanges(e.missing_ranges, 5);
    const li = el("li", { "data-device": e.device_id, "data-day": e.day });
    li.append(el("strong", {}, e.device_id), ` ${e.day}: ${n(e.missing)} mangler / missing (seq ${ranges}${e.missing_ranges.length > 5 ? ", …" : ""})`);
    return li;
  }));
  note.textContent = lossy.length
    ? `Manglende målinger kan ennå komme (en enhet sender det den har lagret når forbindelsen er tilbake). / Missing readings may still arrive (a device sends what it stored once its link is back).${lossy.length > 20 ? ` ${lossy.length - 20} flere / more: luftnett ledger --days 2` : ""}`
    : "Ingen måling mangler / no reading is missing";
}

// --- downloads --------------------------------------------------------------------------
async function loadDownloads() {
  const sel = document.getElementById("dl-device");
  if (!sel.options.length) {
    const data = await getJSON(`${API}/devices`);
    sel.replaceChildren(...data.devices.map((d) => el("option", { value: d.device_id }, `${d.device_id}${d.site ? " – " + d.site.name : ""}`)));
    const today = new Date();
    document.getElementById("dl-end").value = today.toISOString().slice(0, 10);
    document.getElementById("dl-start").value = new Date(today - 7 * 86400000).toISOString().slice(0, 10);
  }
  updateLinks();
}
// the day after a YYYY-MM-DD date, as YYYY-MM-DD (UTC calendar arithmetic)
const nextDay = (d) => new Date(Date.parse(`${d}T00:00:00Z`) + 86400000).toISOString().slice(0, 10);

function updateLinks() {
  const p = new URLSearchParams(), h = new URLSearchParams();
  for (const o of document.getElementById("dl-device").selectedOptions) {
    p.append("device", o.value);
    h.append("device", o.value);
  }
  // UTC days, the "to" day included: readings up to 00:00 UTC of the day after it
  const s = document.getElementById("dl-start").value, e = document.getElementById("dl-end").value;
  if (s) { p.set("start", `${s}T00:00:00Z`); h.set("start", s); }
  if (e) { p.set("end", `${nextDay(e)}T00:00:00Z`); h.set("end", e); }
  p.set("shape", document.getElementById("dl-shape").value);
  if (document.getElementById("dl-valid").checked) p.set("valid_only", "true");
  document.getElementById("dl-csv").href = `${API}/downloads/readings.csv?${p}`;
  document.getElementById("dl-parquet").href = `${API}/downloads/readings.parquet?${p}`;
  document.getElementById("dl-meta").href = `${API}/downloads/metadata?${p}`;
  document.getElementById("dl-hourly-csv").href = `${API}/downloads/hourly.csv?${h}`;
  document.getElementById("dl-hourly-parquet").href = `${API}/downloads/hourly.parquet?${h}`;
}
document.getElementById("dl-form").addEventListener("change", updateLinks);

function redrawMap() {
  return loadMap().then(() => {
    for (const c of document.querySelectorAll("#map circle.site")) c.classList.toggle("selected", c.dataset.device === state.device);
  });
}
document.getElementById("layer-on").addEventListener("change", redrawMap);
document.getElementById("layer-map").addEventListener("change", redrawMap);
loadProfiles().then(loadMap);
setInterval(() => { if (!document.getElementById("tab-map").hidden) redrawMap(); }, 60000);
