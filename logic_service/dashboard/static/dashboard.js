// tierkit dashboard: polls /dashboard/api/summary every 2 s and draws it.
// No framework, no CDN: the page must work on a machine without internet.
"use strict";

// ?history=60 shows the last minute in the charts (default five minutes, 30..3600 s)
const HISTORY = new URLSearchParams(location.search).get("history");
const FEED = "/dashboard/api/summary" + (HISTORY ? `?history_s=${encodeURIComponent(HISTORY)}` : "");
const REFRESH_MS = 2000;
const TOKEN_KEY = "tierkit-admin-token";
const COLORS = ["#2563eb", "#e67e22", "#16a085", "#8e44ad", "#c0392b", "#7f8c8d"];
const sections = new Map();
let lastSummary = null;

const $ = (root, sel) => root.querySelector(sel);
const fmt = (v, digits = 1) => (v === null || v === undefined || Number.isNaN(v)) ? "–"
  : Number(v).toFixed(digits);
const pct = (v, digits = 1) => (v === null || v === undefined) ? "–" : (100 * v).toFixed(digits) + " %";
const when = (epoch) => new Date(epoch * 1000).toLocaleTimeString([], { hour12: false });
// a round axis top: 1, 2, 5 times a power of ten
function niceTop(value) {
  const power = 10 ** Math.floor(Math.log10(value));
  return [1, 2, 5, 10].map((m) => m * power).find((t) => t >= value);
}

function colorOf(model, version) {
  const versions = Object.keys(model.graph).concat(model.ready_versions.map(String));
  const known = [...new Set(versions)].sort((a, b) => Number(a) - Number(b));
  const i = known.indexOf(String(version));
  return COLORS[(i < 0 ? known.length : i) % COLORS.length];
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v; else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

function table(node, head, rows) {
  node.replaceChildren(el("tr", {}, ...head.map((h) => el("th", {}, h))),
    ...rows.map((r) => el("tr", {}, ...r.map((c) => el("td", {}, c)))));
}

function unavailable(node, part) {
  node.replaceChildren(el("p", { class: "unavailable" }, part.error));
}

function swatch(model, version) {
  const s = el("span", { class: "swatch" });
  s.style.background = colorOf(model, version);
  return el("span", {}, s, `v${version}`);
}

function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }

function section(model) {
  if (!sections.has(model.name)) {
    const node = document.getElementById("model-template").content.firstElementChild.cloneNode(true);
    node.dataset.model = model.name;
    $(node, ".name").textContent = model.name;
    node.querySelectorAll(".actions button").forEach((b) =>
      b.addEventListener("click", () => act(model.name, b.dataset.action, node)));
    document.getElementById("models").append(node);
    sections.set(model.name, node);
  }
  return sections.get(model.name);
}

function drawAxes(ctx, w, h, pad, top, unit) {
  ctx.strokeStyle = "#e1e6ec"; ctx.fillStyle = "#6b7785"; ctx.font = "11px system-ui";
  ctx.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const y = pad.t + (h - pad.t - pad.b) * (1 - i / 4);
    ctx.beginPath(); ctx.moveTo(pad.l, y); ctx.lineTo(w - pad.r, y); ctx.stroke();
    ctx.fillText(String(+(top * i / 4).toFixed(2)) + unit, 2, y + 4);
  }
}

function prepare(canvas) {
  const ratio = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || canvas.width, h = canvas.clientHeight || canvas.height;
  canvas.width = w * ratio; canvas.height = h * ratio;
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, w, h);
  return { ctx, w, h };
}

function timeLabels(ctx, starts, x, h, pad) {
  ctx.fillStyle = "#6b7785";
  const every = Math.ceil(starts.length / 5);
  for (let i = every; i < starts.length; i += every) ctx.fillText(when(starts[i]), x(i) - 22, h - 4);
}

function emptyNote(ctx, w, h, text) {
  ctx.fillStyle = "#6b7785"; ctx.font = "12px system-ui";
  ctx.fillText(text, w / 2 - ctx.measureText(text).width / 2, h / 2);
}

// Requests/s per version, one line each.
function drawRps(canvas, model, history) {
  const { ctx, w, h } = prepare(canvas);
  const pad = { l: 44, r: 8, t: 8, b: 18 };
  const series = Object.entries(history.versions);
  const n = history.starts.length;
  const rates = series.map(([v, counts]) => [v, counts.map((c) => c / history.bucket_s)]);
  const top = niceTop(Math.max(1, ...rates.flatMap(([, r]) => r)) * 1.05);
  const x = (i) => pad.l + (w - pad.l - pad.r) * (i / Math.max(1, n - 1));
  const y = (v) => pad.t + (h - pad.t - pad.b) * (1 - v / top);
  drawAxes(ctx, w, h, pad, top, "/s");
  timeLabels(ctx, history.starts, x, h, pad);
  let points = 0;
  for (const [version, r] of rates) {
    ctx.strokeStyle = colorOf(model, version); ctx.lineWidth = 2; ctx.beginPath();
    r.forEach((v, i) => { i ? ctx.lineTo(x(i), y(v)) : ctx.moveTo(x(i), y(v)); if (v > 0) points++; });
    ctx.stroke();
  }
  if (!points) emptyNote(ctx, w, h, "no requests in the last five minutes");
  canvas.dataset.points = points;
}

// Share of each version in each bucket, stacked to 100 %.
function drawSplit(canvas, model, history) {
  const { ctx, w, h } = prepare(canvas);
  const pad = { l: 44, r: 8, t: 8, b: 18 };
  const series = Object.entries(history.versions);
  const n = history.starts.length;
  const totals = history.starts.map((_, i) => series.reduce((s, [, c]) => s + c[i], 0));
  const slot = (w - pad.l - pad.r) / Math.max(1, n);
  const x = (i) => pad.l + slot * i + slot / 2;
  drawAxes(ctx, w, h, pad, 100, "%");
  timeLabels(ctx, history.starts, x, h, pad);
  let points = 0;
  const plot = h - pad.t - pad.b;
  totals.forEach((total, i) => {
    if (!total) return;
    let base = 0;
    for (const [version, counts] of series) {
      const share = counts[i] / total;
      if (!share) continue;
      ctx.fillStyle = colorOf(model, version);
      ctx.fillRect(pad.l + slot * i + 1, pad.t + plot * (1 - base - share), slot - 2, plot * share);
      base += share; points++;
    }
  });
  if (!points) emptyNote(ctx, w, h, "no traffic to split yet");
  canvas.dataset.points = points;
}

function renderVersions(node, model) {
  const labelsOf = (v) => Object.entries(model.labels).filter(([, n]) => String(n) === String(v))
    .map(([l]) => l).join(", ");
  const versions = [...new Set([...Object.keys(model.graph), ...model.ready_versions.map(String)])]
    .sort((a, b) => Number(a) - Number(b));
  // export --quantize: a model.tflite beside the SavedModel, served by a graph tier
  // started with --prefer_tflite_model=true (the manifest says which mode)
  const quantized = model.quantized || {};
  table($(node, ".versions table"), ["version", "graph tier", "labels", "quantized", "logic tier"],
    versions.map((v) => [swatch(model, v),
      el("span", { class: `state-${model.graph[v] || "none"}` }, model.graph[v] || "–"),
      labelsOf(v) || "–",
      quantized[v] ? el("span", { class: "quantized",
        title: "model.tflite beside the SavedModel: served with --prefer_tflite_model=true" },
        `TF Lite ${quantized[v]}`) : "–",
      model.failed[v] ? el("span", { class: "bad", title: model.failed[v] }, "failed")
        : model.loading.map(String).includes(v) ? "loading" :
          model.ready_versions.map(String).includes(v) ? "ready" : "–"]));
  $(node, ".labels").textContent = Object.entries(model.labels).map(([l, v]) => `${l}→v${v}`).join("  ");
}

function renderLive(node, model) {
  const box = $(node, ".live table");
  if (model.live.error) return unavailable(box, model.live);
  table(box, ["version", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors"],
    model.live.map((s) => [swatch(model, s.version), fmt(s.rps, 2), fmt(s.p50_ms), fmt(s.p95_ms),
      fmt(s.p99_ms), el("span", { class: s.error_rate > 0.01 ? "bad" : "" }, pct(s.error_rate))]));
  if (!model.live.length) box.replaceChildren(el("tr", {}, el("td", { class: "muted" },
    "no requests in the last minute")));
}

// The graph tier's own counters (its Prometheus exporter), cumulative: two polls make rates.
const graphSeen = new Map();  // model -> {t, requests, errors, run_seconds, runs}
function renderGraphMetrics(node, model, metrics) {
  const box = $(node, ".graph-metrics table");
  if (!metrics || metrics.error) return unavailable(box, metrics || { error: "no graph metrics" });
  const now = metrics.models[model.name];
  if (!now) return box.replaceChildren(el("tr", {}, el("td", { class: "muted" },
    "the graph tier has counted no request of this model yet")));
  const t = Date.now() / 1000, before = graphSeen.get(model.name);
  graphSeen.set(model.name, { t, ...now });
  const dt = before ? t - before.t : 0;
  const rate = (k) => (before && dt > 0 && now[k] >= before[k]) ? (now[k] - before[k]) / dt : null;
  const runs = before ? now.runs - before.runs : 0;
  const runMs = runs > 0 ? 1000 * (now.run_seconds - before.run_seconds) / runs : null;
  table(box, ["req/s", "errors/s", "TensorFlow run, mean ms", "requests since start", "errors"],
    [[fmt(rate("requests"), 2), fmt(rate("errors"), 2), fmt(runMs, 2),
      String(Math.round(now.requests)), String(Math.round(now.errors))]]);
}

// Request APIs (v1, v2...): which versions serve each, deprecation and retirement, and the
// last minute's requests per API and version, routed by the rollout or pinned by the caller.
function renderApis(node, model) {
  const body = $(node, ".apis .body");
  if (!model.apis) return body.replaceChildren();
  if (model.apis.error) return unavailable(body, model.apis);
  const day = (iso) => iso ? iso.slice(0, 10) : "";
  const status = (a) => a.retired ? el("span", { class: "bad", title: a.retired.reason }, `retired ${day(a.retired.retired_at)}`)
    : a.deprecated ? el("span", { class: "warn" }, `deprecated${a.sunset ? ", sunset " + day(a.sunset) : ""}`
      + (a.successor ? ` → ${a.successor}` : ""))
      : "serving";
  const apis = el("table", { class: "api-list" });
  table(apis, ["API", "versions", "status"], model.apis.apis.map((a) => [a.api_version,
    a.versions.length ? a.versions.map((v) => `v${v}`).join(", ") : "none loaded", status(a)]));
  const parts = [apis];
  const traffic = model.apis.traffic;
  if (traffic.error) parts.push(el("p", { class: "unavailable" }, traffic.error));
  else if (!traffic.length) parts.push(el("p", { class: "muted" }, "no requests in the last minute"));
  else {
    const t = el("table", { class: "api-traffic" });
    table(t, ["API", "version", "routed", "pinned", "5xx"], traffic.map((r) => [r.api_version,
      r.version === null ? "–" : swatch(model, r.version), r.routed, r.pinned,
      el("span", { class: r.errors ? "bad" : "" }, r.errors)]));
    t.querySelectorAll("tr").forEach((row, i) => {
      if (!i) return;
      const r = traffic[i - 1];
      Object.assign(row.dataset, { api: r.api_version, version: r.version ?? "", pinned: r.pinned });
    });
    parts.push(t);
  }
  body.replaceChildren(...parts);
}

function renderRollout(node, model, adminEnabled) {
  const body = $(node, ".rollout .body");
  const buttons = node.querySelectorAll(".actions button");
  const history = $(node, ".history");
  if (model.rollout.error) {
    unavailable(body, model.rollout); history.replaceChildren();
    buttons.forEach((b) => { b.disabled = true; });
    return;
  }
  const r = model.rollout;
  const parts = [el("div", {}, "strategy ", el("b", {}, r.strategy),
    r.revision ? ` · revision ${r.revision} · updated ${when(r.updated_at)}` : " (no rollout set)")];
  if (r.canary) {
    const c = r.canary;
    parts.push(el("div", {}, `candidate ${r.spec.candidate ?? "?"} vs baseline ${r.spec.baseline ?? "stable"}: `,
      el("b", {}, `${fmt(c.share, 0)} %`), ` · ${c.status} (${c.reason})`));
    parts.push(el("div", { class: "stages" }, ...c.stages.map((s, i) => el("span", {
      class: c.status === "rolled_back" ? "" : i < c.stage || c.status === "promoted" ? "done"
        : i === c.stage ? "current" : "" }, `${s}%`))));
  } else if (r.strategy === "split") {
    parts.push(el("div", {}, "weights: " + Object.entries(r.spec.weights).map(([k, v]) => `${k}=${v}`).join(", ")));
  } else if (r.strategy === "blue_green") {
    parts.push(el("div", {}, `active ${r.spec.active ?? "?"} · standby ${r.spec.standby ?? "–"}`));
  }
  // versions the rollout names that cannot serve now (folder gone, load failed): issue #24
  (r.warnings || []).forEach((w) => parts.push(el("div", { class: "warn rollout-warning" },
    `⚠ ${w.message}`)));
  body.replaceChildren(...parts);
  const canAct = adminEnabled && !!token();
  buttons.forEach((b) => {
    const fits = b.dataset.action === "switch" ? r.strategy === "blue_green" : r.strategy === "canary";
    b.disabled = !(canAct && fits);
    b.title = !adminEnabled ? "admin API disabled on this server (admin_token unset)"
      : !token() ? "type the admin token above first" : fits ? "" : `not for strategy ${r.strategy}`;
  });
  history.replaceChildren(...r.events.slice().reverse().map((e) =>
    el("li", {}, `${when(e.at)} `, el("b", {}, e.kind), ` ${e.reason || ""}`)));
  node.dataset.rolloutRevision = r.revision;
  node.dataset.canaryShare = r.canary ? r.canary.share : "";
}

function renderShadow(node, model) {
  const body = $(node, ".shadow .body");
  if (model.shadow.error) return unavailable(body, model.shadow);
  if (!model.shadow.length) return body.replaceChildren(el("p", { class: "muted" },
    "no shadow traffic (set rollout.shadow to mirror requests to a version)"));
  const t = el("table");
  table(t, ["pair", "agree", "mean Δscore", "ms (p / s)", "failed"],
    model.shadow.map((s) => [`v${s.primary} → v${s.shadow}`, `${pct(s.agreement_rate, 0)} of ${s.compared}`,
      fmt(s.score_diff.mean, 4), `${fmt(s.mean_primary_ms)} / ${fmt(s.mean_shadow_ms)}`,
      el("span", { class: s.failed ? "bad" : "" }, s.failed)]));
  body.replaceChildren(t);
}

function renderEvaluation(node, model) {
  const body = $(node, ".evaluation .body");
  if (model.evaluation.error) return unavailable(body, model.evaluation);
  const rows = model.evaluation.versions;
  if (!rows.length) return body.replaceChildren(el("p", { class: "muted" }, "no predictions in the last hour"));
  const t = el("table");
  table(t, ["version", "requests", "error rate", "p99 ms", "feedback", "coverage", "accuracy",
    "AUC", "log loss", "MAE"],
  rows.map((s) => [swatch(model, s.version), s.requests, pct(s.error_rate, 2), fmt(s.p99_ms),
    s.feedback, sharePct(s.coverage), pct(s.accuracy), fmt(s.auc, 3), fmt(s.log_loss, 3), fmt(s.mae, 3)]));
  body.replaceChildren(t);
}

function render(summary) {
  lastSummary = summary;
  const status = document.getElementById("status");
  status.textContent = summary.ready ? `ready · ${when(Date.now() / 1000)}`
    : `not ready: ${summary.problems.join("; ")}`;
  status.className = "pill " + (summary.ready ? "ok" : "bad");
  if (!sections.size) document.getElementById("models").replaceChildren();
  for (const model of summary.models) {
    const node = section(model);
    renderVersions(node, model);
    renderLive(node, model);
    renderGraphMetrics(node, model, summary.graph_metrics);
    renderApis(node, model);
    const rps = $(node, ".rps-chart"), split = $(node, ".split-chart");
    if (model.history.error) {
      for (const c of [rps, split]) { const { ctx, w, h } = prepare(c); emptyNote(ctx, w, h, model.history.error); c.dataset.points = 0; }
    } else { drawRps(rps, model, model.history); drawSplit(split, model, model.history); }
    renderRollout(node, model, summary.admin_enabled);
    renderShadow(node, model);
    renderEvaluation(node, model);
  }
}

async function act(model, action, node) {
  const out = $(node, ".action-result");
  out.textContent = `${action}…`;
  try {
    const response = await fetch(`/admin/rollouts/${encodeURIComponent(model)}/${action}`, {
      method: "POST",
      headers: { "Authorization": `Bearer ${token()}`, "Content-Type": "application/json" },
      body: JSON.stringify({ reason: `${action} from the dashboard` }),
    });
    const answer = await response.json().catch(() => ({}));
    out.textContent = response.ok ? `${action}: done`
      : `${action} refused (${response.status}): ${answer.error?.message ?? answer.detail ?? answer.message ?? JSON.stringify(answer)}`;
    out.className = "action-result " + (response.ok ? "muted" : "bad");
  } catch (err) {
    out.textContent = `${action} failed: ${err}`; out.className = "action-result bad";
  }
  refresh();
}

async function refresh() {
  try {
    const response = await fetch(FEED, { cache: "no-store" });
    if (!response.ok) throw new Error(`feed answered ${response.status}`);
    render(await response.json());
  } catch (err) {
    const status = document.getElementById("status");
    status.textContent = `feed unreachable: ${err.message}`; status.className = "pill bad";
  }
}

document.getElementById("admin-token").value = token();
document.getElementById("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, document.getElementById("admin-token").value.trim());
  if (lastSummary) render(lastSummary);
});
document.getElementById("forget-token").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  document.getElementById("admin-token").value = "";
  if (lastSummary) render(lastSummary);
});
refresh();
setInterval(refresh, REFRESH_MS);
