// kwq console: a small hash-routed page over the tracker's JSON API
// (tracker/console/README.md). No build step; Chart.js is vendored.
"use strict";

const STATES = ["COMPLETED", "FAILED", "CANCELLED", "RUNNING", "ALLOCATED", "ERROR", "PENDING"];
const main = document.getElementById("main");
let config = { needs_token: false, scheduler: false, live_period_ms: 1000 };
let live = null;      // the open EventSource
let timers = [];      // intervals of the current page
let charts = [];      // Chart.js instances of the current page

// ---- helpers -------------------------------------------------------------
const num = (v) => Number(v || 0);
const fmt = (v) => num(v).toLocaleString("en-US");
function esc(s) {
  return String(s ?? "").replace(/[&<>"']/g, (c) =>
    ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}
function el(html) { main.innerHTML = html; }
function fmtRate(r) { return r ? (r >= 100 ? fmt(Math.round(r)) : r.toFixed(1)) + "/s" : "–"; }
function fmtDuration(s) {
  if (!s || !isFinite(s)) return "–";
  s = Math.round(s);
  if (s < 60) return s + "s";
  if (s < 3600) return Math.floor(s / 60) + "m" + String(s % 60).padStart(2, "0") + "s";
  return Math.floor(s / 3600) + "h" + String(Math.floor(s % 3600 / 60)).padStart(2, "0") + "m";
}
function fmtTime(t) { return t ? new Date(t).toISOString().replace("T", " ").replace("Z", "") : "–"; }
function ms(a, b) { return a && b ? (new Date(b) - new Date(a)) : null; }

async function api(path, opts) {
  const res = await fetch(path, Object.assign({ credentials: "same-origin" }, opts));
  if (res.status === 401) { await login(); return api(path, opts); }
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body.error || res.statusText);
  return body;
}

function login() {
  return new Promise((resolve) => {
    const dlg = document.getElementById("login");
    const form = document.getElementById("login-form");
    form.onsubmit = async (e) => {
      e.preventDefault();
      const res = await fetch("/api/login", { method: "POST",
        body: document.getElementById("token").value });
      if (res.ok) { dlg.close(); resolve(); return; }
      const body = await res.json().catch(() => ({}));
      document.getElementById("login-error").textContent = body.error || res.statusText;
    };
    if (!dlg.open) dlg.showModal();
  });
}

function counts(c) {
  c = c || {};
  return { PENDING: num(c.pending), ALLOCATED: num(c.allocated), RUNNING: num(c.running),
    COMPLETED: num(c.completed), ERROR: num(c.error), FAILED: num(c.failed),
    CANCELLED: num(c.cancelled), total: num(c.total), retries: num(c.retries),
    repeated: num(c.repeated_executions) };
}

function bar(c) {
  const total = Math.max(1, c.total);
  return `<div class="bar" title="${STATES.map((s) => s.toLowerCase() + " " + fmt(c[s])).join(", ")}">` +
    STATES.filter((s) => s !== "PENDING").map((s) =>
      c[s] ? `<span class="s-${s}" style="width:${(100 * c[s] / total).toFixed(2)}%"></span>` : "").join("") +
    "</div>";
}

function jobState(job, paused) {
  const c = counts(job.counts);
  if (paused.has(job.job_id) && !job.done) return "PAUSED";
  if (!job.done) return c.RUNNING + c.ALLOCATED ? "RUNNING" : "QUEUED";
  if (c.CANCELLED && c.COMPLETED + c.FAILED < c.total) return "CANCELLED";
  if (c.FAILED) return "FAILED";
  return "DONE";
}

function openLive(path, onData) {
  const badge = document.getElementById("live");
  if (live) live.close();
  live = new EventSource(path);
  live.onmessage = (e) => { badge.classList.add("on"); onData(JSON.parse(e.data)); };
  live.onerror = () => {
    // Refused (too many live pages) or the tracker went away: poll instead.
    badge.classList.remove("on");
    live.close(); live = null;
  };
}

function clearPage() {
  if (live) { live.close(); live = null; }
  document.getElementById("live").classList.remove("on");
  timers.forEach(clearInterval); timers = [];
  charts.forEach((c) => c.destroy()); charts = [];
}

async function pausedJobs() {
  if (!config.scheduler) return new Set();
  try {
    const s = await api("/api/scheduler");
    return new Set((s.queues && s.queues.paused_jobs) || []);
  } catch (e) { return new Set(); }
}

// ---- Jobs ----------------------------------------------------------------
const jobsView = { tokens: [""], page: 0, sort: "job_id", desc: false, filter: "" };

async function showJobs() {
  const v = jobsView;
  const token = v.tokens[v.page] || "";
  let data, paused;
  try {
    [data, paused] = await Promise.all([
      api(`/api/jobs?page_size=50&page_token=${encodeURIComponent(token)}`), pausedJobs()]);
  } catch (e) { el(`<h1>Jobs</h1><p class="error">${esc(e.message)}</p>`); return; }
  const render = (jobs) => {
    let rows = jobs.map((j) => ({ j, c: counts(j.counts), state: jobState(j, paused) }));
    if (v.filter) rows = rows.filter((r) => r.state === v.filter);
    const key = { job_id: (r) => r.j.job_id, state: (r) => r.state, total: (r) => r.c.total,
      done: (r) => r.c.COMPLETED / Math.max(1, r.c.total), failed: (r) => r.c.FAILED,
      rate: (r) => num(r.j.rate_per_second), eta: (r) => num(r.j.eta_seconds) }[v.sort];
    rows.sort((a, b) => (key(a) > key(b) ? 1 : key(a) < key(b) ? -1 : 0) * (v.desc ? -1 : 1));
    const th = (k, label, cls) =>
      `<th class="${cls || ""}" data-sort="${k}">${label}${v.sort === k ? (v.desc ? " ▾" : " ▴") : ""}</th>`;
    el(`<h1>Jobs</h1>
      <div class="toolbar">State <select id="filter">${["", "RUNNING", "QUEUED", "PAUSED", "DONE", "FAILED", "CANCELLED"]
        .map((s) => `<option ${s === v.filter ? "selected" : ""} value="${s}">${s || "all"}</option>`).join("")}</select>
        <button id="prev" ${v.page ? "" : "disabled"}>&larr; newer</button>
        <button id="next" ${data.next_page_token ? "" : "disabled"}>older &rarr;</button>
        <span class="muted">page ${v.page + 1}</span></div>
      <table id="jobs"><thead><tr>${th("job_id", "Job")}${th("state", "State")}<th>Progress</th>
        ${th("done", "Completed", "num")}${th("total", "Total", "num")}${th("failed", "Failed", "num")}
        ${th("rate", "Rate", "num")}${th("eta", "ETA", "num")}<th class="num">Re-runs</th></tr></thead><tbody>
      ${rows.map(({ j, c, state }) => `<tr data-job="${esc(j.job_id)}">
        <td><a href="#/job/${encodeURIComponent(j.job_id)}">${esc(j.job_id)}</a></td>
        <td><span class="badge ${state}">${state}</span></td><td>${bar(c)}</td>
        <td class="num completed">${fmt(c.COMPLETED)}</td><td class="num total">${fmt(c.total)}</td>
        <td class="num failed">${fmt(c.FAILED)}</td><td class="num">${j.done ? "–" : fmtRate(num(j.rate_per_second))}</td>
        <td class="num">${j.done ? "–" : fmtDuration(num(j.eta_seconds))}</td><td class="num">${fmt(c.repeated)}</td></tr>`).join("")}
      </tbody></table>${rows.length ? "" : '<p class="muted">No jobs.</p>'}`);
    document.querySelectorAll("th[data-sort]").forEach((h) => h.onclick = () => {
      v.desc = v.sort === h.dataset.sort ? !v.desc : false; v.sort = h.dataset.sort; render(jobs);
    });
    document.getElementById("filter").onchange = (e) => { v.filter = e.target.value; render(jobs); };
    document.getElementById("prev").onclick = () => { v.page--; route(); };
    document.getElementById("next").onclick = () => { v.tokens[v.page + 1] = data.next_page_token; v.page++; route(); };
  };
  render(data.jobs || []);
  if (v.page === 0) {
    openLive("/api/live", (d) => { data = d; render(d.jobs || []); });
    timers.push(setInterval(async () => {
      if (live) return;  // the stream keeps the page current
      try { data = await api("/api/jobs?page_size=50"); paused = await pausedJobs(); render(data.jobs || []); } catch (e) {}
    }, 2000));
  }
}

// ---- Job -----------------------------------------------------------------
const taskView = { job: "", state: "", tag: "", tokens: [""], page: 0 };

async function showJob(id) {
  let job;
  try { job = await api(`/api/job?id=${encodeURIComponent(id)}`); } catch (e) {
    el(`<h1>Job ${esc(id)}</h1><p class="error">${esc(e.message)}</p>`); return;
  }
  if (taskView.job !== id) Object.assign(taskView, { job: id, state: "", tag: "", tokens: [""], page: 0 });
  const paused = await pausedJobs();
  el(`<h1>Job ${esc(id)} <span id="job-state"></span></h1>
    <div class="toolbar" id="actions">${config.scheduler ? `
      <button data-action="pause">Pause</button><button data-action="resume">Resume</button>
      <button data-action="cancel">Cancel</button><span id="action-msg" class="muted"></span>` :
      '<span class="muted">read-only (no scheduler configured)</span>'}</div>
    <div class="cards" id="cards"></div><div id="progress"></div>
    <div class="grid2"><div><h2>Completions per second (the grid, last 2 minutes)</h2><div class="chart"><canvas id="thr"></canvas></div></div>
    <div><h2>Submit-to-start and run time (latest completed tasks)</h2><div class="chart"><canvas id="dist"></canvas></div></div></div>
    <h2>By priority</h2><table id="priorities"><thead><tr><th>Priority</th><th>Progress</th><th class="num">Completed</th>
      <th class="num">Failed</th><th class="num">Running</th><th class="num">Pending</th><th class="num">Total</th></tr></thead><tbody></tbody></table>
    <h2>By tag</h2><table id="tags"><thead><tr><th>Tag</th><th>Progress</th><th class="num">Completed</th>
      <th class="num">Failed</th><th class="num">Running</th><th class="num">Pending</th><th class="num">Total</th></tr></thead><tbody></tbody></table>
    <h2>Recent errors <a class="small" href="#/dlq/${encodeURIComponent(id)}">dead letters of this job</a></h2><div id="errors"></div>
    <h2>Tasks</h2><div class="toolbar">State <select id="t-state">${[""].concat(STATES)
      .map((s) => `<option value="${s}" ${s === taskView.state ? "selected" : ""}>${s || "all"}</option>`).join("")}</select>
      Tag <input id="t-tag" placeholder="key=value" value="${esc(taskView.tag)}" size="18">
      <button id="t-prev">&larr;</button><button id="t-next">&rarr;</button><span id="t-page" class="muted"></span></div>
    <table id="tasks"><thead><tr><th>Task</th><th>State</th><th class="num">Attempts</th><th>Worker</th>
      <th>Finished</th><th>Error</th></tr></thead><tbody></tbody></table>`);
  const renderSummary = (j) => {
    const c = counts(j.counts);
    const state = jobState(j, paused);
    document.getElementById("job-state").innerHTML = `<span class="badge ${state}">${state}</span>`;
    document.getElementById("cards").innerHTML = [["Total", c.total], ["Completed", c.COMPLETED],
      ["Running", c.RUNNING + c.ALLOCATED], ["Pending", c.PENDING], ["Failed", c.FAILED],
      ["Cancelled", c.CANCELLED], ["Retries", c.retries], ["Re-runs", c.repeated]]
      .map(([k, n]) => `<div class="card" data-count="${k.toLowerCase()}"><span class="muted">${k}</span><b>${fmt(n)}</b></div>`).join("") +
      `<div class="card"><span class="muted">Rate</span><b>${j.done ? "–" : fmtRate(num(j.rate_per_second))}</b></div>` +
      `<div class="card"><span class="muted">ETA</span><b>${j.done ? "done" : fmtDuration(num(j.eta_seconds))}</b></div>`;
    document.getElementById("progress").innerHTML = bar(c) +
      `<div class="legend muted">${STATES.map((s) => `<span class="s-${s}"></span>${s.toLowerCase()}`).join("")}</div>`;
    document.querySelector("#priorities tbody").innerHTML = (j.priorities || []).map((p) => {
      const pc = counts(p.counts);
      return `<tr data-priority="${num(p.priority)}"><td>p${num(p.priority)}</td><td>${bar(pc)}</td>
        <td class="num completed">${fmt(pc.COMPLETED)}</td><td class="num">${fmt(pc.FAILED)}</td>
        <td class="num">${fmt(pc.RUNNING + pc.ALLOCATED)}</td><td class="num">${fmt(pc.PENDING)}</td><td class="num total">${fmt(pc.total)}</td></tr>`;
    }).join("");
    document.querySelector("#tags tbody").innerHTML = (j.tags || []).map((t) => {
      const tc = counts(t.counts);
      return `<tr data-tag="${esc(t.tag)}"><td><a href="#" data-filter-tag="${esc(t.tag)}">${esc(t.tag)}</a></td><td>${bar(tc)}</td>
        <td class="num completed">${fmt(tc.COMPLETED)}</td><td class="num">${fmt(tc.FAILED)}</td>
        <td class="num">${fmt(tc.RUNNING + tc.ALLOCATED)}</td><td class="num">${fmt(tc.PENDING)}</td><td class="num total">${fmt(tc.total)}</td></tr>`;
    }).join("");
    document.querySelectorAll("[data-filter-tag]").forEach((a) => a.onclick = (e) => {
      e.preventDefault(); taskView.tag = a.dataset.filterTag; taskView.tokens = [""]; taskView.page = 0;
      document.getElementById("t-tag").value = taskView.tag; loadTasks();
    });
    document.getElementById("errors").innerHTML = (j.recent_errors || []).length ?
      "<ul>" + j.recent_errors.map((e) => {
        // "TASK_ID (attempt N): error text" (the tracker's summary).
        const m = /^(\S+)(?= \(attempt \d+\): )/.exec(e);
        return `<li>${m ? `<a href="#/task/${encodeURIComponent(m[1])}">${esc(m[1])}</a>` : ""}${esc(m ? e.slice(m[1].length) : e)}</li>`;
      }).join("") + "</ul>" : '<p class="muted">None.</p>';
  };
  renderSummary(job);
  document.querySelectorAll("#actions button").forEach((b) => b.onclick = async () => {
    const msg = document.getElementById("action-msg");
    if (b.dataset.action === "cancel" && !confirm(`Cancel every unfinished task of ${id}?`)) return;
    try {
      await api("/api/control", { method: "POST", headers: { "X-Kwq-Console": "1",
        "Content-Type": "application/x-www-form-urlencoded" },
        body: `action=${b.dataset.action}&job=${encodeURIComponent(id)}` });
      msg.textContent = `${b.dataset.action}: accepted`; msg.className = "muted";
      const p2 = await pausedJobs(); paused.clear(); p2.forEach((x) => paused.add(x));
    } catch (e) { msg.textContent = e.message; msg.className = "error"; }
  });
  const loadTasks = async () => {
    const v = taskView;
    const q = `job=${encodeURIComponent(id)}&page_size=50&state=${v.state}&tag=${encodeURIComponent(v.tag)}` +
      `&page_token=${encodeURIComponent(v.tokens[v.page] || "")}`;
    let data;
    try { data = await api(`/api/tasks?${q}`); } catch (e) {
      document.querySelector("#tasks tbody").innerHTML = `<tr><td colspan="6" class="error">${esc(e.message)}</td></tr>`; return;
    }
    document.querySelector("#tasks tbody").innerHTML = (data.tasks || []).map((t) => {
      const last = (t.history || [])[t.history.length - 1] || {};
      return `<tr><td><a href="#/task/${encodeURIComponent(t.task_id)}">${esc(t.task_id)}</a></td>
        <td><span class="badge">${esc(t.state)}</span></td><td class="num">${num(t.attempts)}</td>
        <td>${esc(last.worker_id)}</td><td>${fmtTime(last.finished_time)}</td><td>${esc((t.last_error || "").slice(0, 80))}</td></tr>`;
    }).join("") || '<tr><td colspan="6" class="muted">No tasks.</td></tr>';
    document.getElementById("t-page").textContent = `page ${v.page + 1}`;
    document.getElementById("t-prev").disabled = !v.page;
    const next = document.getElementById("t-next");
    next.disabled = !data.next_page_token;
    next.onclick = () => { v.tokens[v.page + 1] = data.next_page_token; v.page++; loadTasks(); };
  };
  document.getElementById("t-prev").onclick = () => { taskView.page--; loadTasks(); };
  document.getElementById("t-state").onchange = (e) => { taskView.state = e.target.value; taskView.tokens = [""]; taskView.page = 0; loadTasks(); };
  document.getElementById("t-tag").onchange = (e) => { taskView.tag = e.target.value; taskView.tokens = [""]; taskView.page = 0; loadTasks(); };
  loadTasks();

  // Charts.
  const thr = new Chart(document.getElementById("thr"), { type: "line",
    data: { labels: [], datasets: [{ label: "completed/s", data: [], borderColor: "#16a34a", pointRadius: 0, tension: .2 },
      { label: "errors/s", data: [], borderColor: "#dc2626", pointRadius: 0 }] },
    options: { animation: false, maintainAspectRatio: false, scales: { y: { beginAtZero: true } } } });
  const dist = new Chart(document.getElementById("dist"), { type: "bar",
    data: { labels: [], datasets: [{ label: "submit to start", data: [], backgroundColor: "#60a5fa" },
      { label: "run time", data: [], backgroundColor: "#16a34a" }] },
    options: { animation: false, maintainAspectRatio: false, scales: { x: { title: { display: true, text: "ms (upper bound)" } } } } });
  charts.push(thr, dist);
  const loadThroughput = async () => {
    try {
      const t = await api("/api/throughput?bucket_seconds=1&buckets=120");
      const b = t.buckets || [];
      thr.data.labels = b.map((x) => new Date(x.start).toISOString().slice(11, 19));
      thr.data.datasets[0].data = b.map((x) => num(x.completed));
      thr.data.datasets[1].data = b.map((x) => num(x.errors));
      thr.update();
    } catch (e) {}
  };
  const loadDist = async () => {
    try {
      const d = await api(`/api/tasks?job=${encodeURIComponent(id)}&state=COMPLETED&page_size=500`);
      const edges = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 60000, Infinity];
      const wait = new Array(edges.length).fill(0), run = new Array(edges.length).fill(0);
      const put = (h, v) => { if (v !== null && v >= 0) h[edges.findIndex((e) => v <= e)]++; };
      (d.tasks || []).forEach((t) => {
        const a = (t.history || [])[t.history.length - 1] || {};
        put(wait, ms(a.pending_time, a.allocated_time || a.running_time));
        put(run, ms(a.running_time || a.allocated_time, a.finished_time));
      });
      dist.data.labels = edges.map((e) => (e === Infinity ? ">60000" : "≤" + e));
      dist.data.datasets[0].data = wait; dist.data.datasets[1].data = run;
      dist.update();
    } catch (e) {}
  };
  loadThroughput(); loadDist();
  timers.push(setInterval(loadThroughput, 2000), setInterval(loadDist, 10000));
  openLive(`/api/live?job=${encodeURIComponent(id)}`, (j) => { if (j.job_id) renderSummary(j); });
  timers.push(setInterval(async () => {
    if (live) return;
    try { renderSummary(await api(`/api/job?id=${encodeURIComponent(id)}`)); } catch (e) {}
  }, 2000));
}

// ---- Task ----------------------------------------------------------------
async function showTask(id) {
  let d;
  try { d = await api(`/api/task?id=${encodeURIComponent(id)}`); } catch (e) {
    el(`<h1>Task ${esc(id)}</h1><p class="error">${esc(e.message)}</p>`); return;
  }
  const t = d.task;
  const hist = t.history || [];
  const t0 = Math.min(...hist.map((a) => new Date(a.pending_time || a.allocated_time || a.running_time || 0).getTime()).filter((x) => x > 0));
  const tEnd = Math.max(...hist.map((a) => new Date(a.finished_time || Date.now()).getTime()));
  const span = Math.max(1, tEnd - t0);
  const seg = (from, to, cls) => {
    if (!from) return "";
    const a = new Date(from).getTime(), b = to ? new Date(to).getTime() : Date.now();
    return `<span class="${cls}" style="position:absolute;left:${(100 * (a - t0) / span).toFixed(2)}%;width:${Math.max(.5, 100 * (b - a) / span).toFixed(2)}%;height:100%"></span>`;
  };
  el(`<h1>Task ${esc(t.task_id)} <span class="badge">${esc(t.state)}</span></h1>
    <p>Job <a href="#/job/${encodeURIComponent(t.job_id)}">${esc(t.job_id)}</a> · priority ${num(t.priority)} ·
      ${num(t.attempts)} attempt(s) · tags ${Object.entries(t.tags || {}).map(([k, v]) => esc(k + "=" + v)).join(", ") || "none"}
      ${num(t.repeated_executions) ? ` · <b>${num(t.repeated_executions)} repeated execution(s)</b>` : ""}</p>
    ${d.explain ? `<h2>Why it waits</h2><ul>${(d.explain.reasons || []).map((r) => `<li>${esc(r)}</li>`).join("")}</ul>` : ""}
    <h2>Attempts</h2>
    <table id="attempts"><thead><tr><th>#</th><th>State</th><th>Timeline</th><th>Pending</th><th>Allocated</th><th>Running</th><th>Finished</th>
      <th class="num">Wait ms</th><th class="num">Run ms</th><th>Worker</th><th>Scheduler</th></tr></thead><tbody>
    ${hist.map((a) => `<tr class="attempt"><td>${num(a.attempt)}</td><td><span class="badge">${esc(a.state)}</span></td>
      <td><div style="position:relative;height:12px;min-width:200px;background:#f3f4f6">
        ${seg(a.pending_time, a.allocated_time || a.running_time || a.finished_time, "s-PENDING")}
        ${seg(a.allocated_time, a.running_time || a.finished_time, "s-ALLOCATED")}
        ${seg(a.running_time, a.finished_time, "s-" + (a.state === "COMPLETED" ? "COMPLETED" : a.finished_time ? "ERROR" : "RUNNING"))}</div></td>
      <td>${fmtTime(a.pending_time)}</td><td>${fmtTime(a.allocated_time)}</td><td>${fmtTime(a.running_time)}</td><td>${fmtTime(a.finished_time)}</td>
      <td class="num">${ms(a.pending_time, a.allocated_time || a.running_time) ?? "–"}</td>
      <td class="num">${ms(a.running_time || a.allocated_time, a.finished_time) ?? "–"}</td>
      <td>${esc(a.worker_id)}</td><td>${esc(a.scheduler_id)}</td></tr>
      ${a.error ? `<tr><td></td><td colspan="10"><pre class="error">${esc(a.error)}</pre></td></tr>` : ""}
      ${a.waiting ? `<tr><td></td><td colspan="10" class="muted">waiting: ${esc(a.waiting)}</td></tr>` : ""}`).join("")}
    </tbody></table>
    ${t.state === "COMPLETED" ? `<h2>Result</h2><div id="result"><p class="muted">Looking it up in the results topic&hellip;</p></div>` : ""}`);
  if (t.state === "COMPLETED") {
    api(`/api/result?task=${encodeURIComponent(id)}`).then((r) => {
      // The first KiB of the bytes the worker returned: as text when it is UTF-8
      // without control characters, else as hex.
      const raw = atob((r.result && r.result.result) || "");
      const bytes = Uint8Array.from(raw, (c) => c.charCodeAt(0));
      let text = null;
      try { text = new TextDecoder("utf-8", { fatal: true }).decode(bytes); } catch (e) {}
      if (text !== null && /[\u0000-\u0008\u000e-\u001f]/.test(text)) text = null;
      const shown = text !== null ? text : Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(" ");
      document.getElementById("result").innerHTML =
        `<p class="muted">${fmt(r.size)} bytes` +
        `${num(r.size) > bytes.length ? `, the first ${fmt(bytes.length)} shown` : ""}` +
        `${text === null && bytes.length ? " (hex)" : ""}, attempt ${num(r.result.attempt)} on ${esc(r.result.worker_id)}` +
        ` (${esc(r.position)})</p><pre id="result-bytes">${esc(shown) || '<span class="muted">(empty)</span>'}</pre>`;
    }).catch((e) => {
      const el2 = document.getElementById("result");
      if (el2) el2.innerHTML = `<p class="muted">${esc(e.message)}; <code>kwqctl job results ${esc(t.job_id)}</code> reads every result of the job.</p>`;
    });
  }
  if (!["COMPLETED", "FAILED", "CANCELLED"].includes(t.state)) {
    timers.push(setInterval(() => { if (location.hash === `#/task/${encodeURIComponent(id)}`) showTask(id); }, 3000));
  }
}

// ---- Workers and queues ----------------------------------------------------
async function showWorkers() {
  if (!config.scheduler) {
    el(`<h1>Workers &amp; queues</h1><p class="muted">No scheduler configured: start the tracker with
      <code>--console_scheduler=HOST:PORT</code> (kwqctl dev does).</p>`);
    return;
  }
  const render = (s) => {
    const q = s.queues || {}, w = (s.workers && s.workers.workers) || [];
    el(`<h1>Workers &amp; queues <span class="muted">(instance ${esc(q.scheduler_id)})</span></h1>
      <div class="cards"><div class="card"><span class="muted">Workers</span><b>${w.length}</b></div>
        <div class="card"><span class="muted">In flight</span><b>${fmt(q.in_flight)}</b></div>
        <div class="card"><span class="muted">Consumer lag</span><b>${num(q.consumer_lag) < 0 ? "–" : fmt(q.consumer_lag)}</b></div>
        <div class="card"><span class="muted">Paused</span><b>${q.all_paused ? "all" : fmt(q.paused_jobs_total) + " jobs"}</b></div></div>
      <h2>Queues</h2><table id="queues"><thead><tr><th>Priority</th><th class="num">Depth</th><th class="num">Oldest age</th><th>Paused</th></tr></thead><tbody>
      ${(q.queues || []).slice().sort((a, b) => num(b.priority) - num(a.priority)).map((x) => `<tr><td>p${num(x.priority)}</td>
        <td class="num">${fmt(x.depth)}</td><td class="num">${fmtDuration(x.oldest_age_seconds)}</td><td>${x.paused ? "paused" : ""}</td></tr>`).join("")}
      </tbody></table>
      <h2>Workers</h2><table id="workers"><thead><tr><th>Worker</th><th class="num">Slots</th><th class="num">In flight</th>
        <th class="num">Free</th><th class="num">Completed</th><th class="num">Errors</th><th>Labels</th><th>Affinity</th><th>SDK</th><th>Connected</th></tr></thead><tbody>
      ${w.map((x) => `<tr><td>${esc(x.worker_id)}${x.draining ? ' <span class="badge">draining</span>' : ""}</td>
        <td class="num">${num(x.slots)}</td><td class="num">${num(x.in_flight)}</td><td class="num">${num(x.free_credits)}</td>
        <td class="num">${fmt(x.completed)}</td><td class="num">${fmt(x.errors)}</td><td>${esc((x.labels || []).join(", "))}</td>
        <td>${esc((x.affinity_keys || []).slice(0, 5).join(", "))}</td><td>${esc(x.sdk)}</td><td>${fmtTime(x.connected_at)}</td></tr>`).join("")}
      </tbody></table>`);
  };
  const load = async () => {
    try { render(await api("/api/scheduler")); } catch (e) {
      el(`<h1>Workers &amp; queues</h1><p class="error">${esc(e.message)}</p>`);
    }
  };
  await load();
  timers.push(setInterval(load, 2000));
}

// ---- Dead letters ------------------------------------------------------------
// The newest records of the dead-letter topic (the tracker reads at most the last
// 1,000 of each partition per request); operators resubmit a task as a new one.
async function showDeadLetters(job) {
  let data;
  const load = async () => {
    try {
      data = await api(`/api/dlq?limit=200&job=${encodeURIComponent(job || "")}`);
    } catch (e) {
      el(`<h1>Dead letters</h1><p class="error">${esc(e.message)}</p>`);
      return;
    }
    const rows = data.dead_letters || [];
    el(`<h1>Dead letters${job ? ` of job <a href="#/job/${encodeURIComponent(job)}">${esc(job)}</a>` : ""}</h1>
      <p class="muted">Tasks that used up their attempts, and records that were not tasks, newest first
        (${fmt(rows.length)} shown of the newest ${fmt(data.scanned)} in the topic).
        ${data.can_resubmit ? "Resubmit sends the task again as a new task (its id + .r and the time)." :
          "Read-only: no scheduler configured."}</p>
      <p id="dlq-msg" class="muted"></p>
      <table id="dlq"><thead><tr><th>Time</th><th>Task</th><th>Job</th><th class="num">Priority</th>
        <th>Reason</th><th>Record</th><th></th></tr></thead><tbody>
      ${rows.map((r) => {
        const d = r.letter || {}, t = d.task || {};
        return `<tr><td>${fmtTime(d.time)}</td>
          <td>${t.id ? `<a href="#/task/${encodeURIComponent(t.id)}">${esc(t.id)}</a>` : '<span class="muted">(not a task)</span>'}</td>
          <td>${t.job_id ? `<a href="#/job/${encodeURIComponent(t.job_id)}">${esc(t.job_id)}</a>` : "–"}</td>
          <td class="num">${t.id ? num(t.priority) : "–"}</td><td>${esc(d.reason)}</td>
          <td class="muted">${esc(d.source_topic ? `${d.source_topic}/${num(d.source_partition)}@${num(d.source_offset)}` : r.position)}</td>
          <td>${data.can_resubmit && t.id ? `<button data-task="${esc(t.id)}">Resubmit</button>` : ""}</td></tr>`;
      }).join("") || '<tr><td colspan="7" class="muted">No dead letters.</td></tr>'}
      </tbody></table>`);
    document.querySelectorAll("#dlq button[data-task]").forEach((b) => b.onclick = async () => {
      const msg = document.getElementById("dlq-msg");
      try {
        const r = await api("/api/dlq/resubmit", { method: "POST", headers: { "X-Kwq-Console": "1",
          "Content-Type": "application/x-www-form-urlencoded" },
          body: `task=${encodeURIComponent(b.dataset.task)}` });
        msg.innerHTML = `Resubmitted ${esc(b.dataset.task)} as <a href="#/task/${encodeURIComponent(r.task_id)}">${esc(r.task_id)}</a>.`;
        msg.className = "muted";
        b.disabled = true;
      } catch (e) { msg.textContent = e.message; msg.className = "error"; }
    });
  };
  await load();
}

// ---- routing ---------------------------------------------------------------
async function route() {
  clearPage();
  const h = location.hash || "#/jobs";
  document.querySelectorAll("header nav a").forEach((a) =>
    a.classList.toggle("active", h.startsWith(a.getAttribute("href"))));
  let m;
  if ((m = /^#\/job\/(.+)$/.exec(h))) return showJob(decodeURIComponent(m[1]));
  if ((m = /^#\/task\/(.+)$/.exec(h))) return showTask(decodeURIComponent(m[1]));
  if (h === "#/workers") return showWorkers();
  if ((m = /^#\/dlq(?:\/(.+))?$/.exec(h))) return showDeadLetters(m[1] ? decodeURIComponent(m[1]) : "");
  return showJobs();
}

window.addEventListener("hashchange", route);
(async () => {
  try { config = await api("/api/config"); } catch (e) {}
  await route();
  document.body.dataset.ready = "1";  // the browser test waits for this
})();
