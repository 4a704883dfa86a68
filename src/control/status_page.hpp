// The status page the arbiter serves at / (options::metrics_address): one
// file, no external asset. It polls /status, /workers and /dead once a
// second while open, and keeps its own chart of requests/s and restarts:
// the arbiter samples nothing while nobody watches.
#pragma once

#include <string_view>

namespace ufork {

inline constexpr std::string_view status_page = R"HTML(<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ufork</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 1em; color: #222; }
h1 { font-size: 1.2em; margin: 0 0 .3em; }
#summary { color: #555; margin-bottom: .8em; }
table { border-collapse: collapse; width: 100%; max-width: 60em; }
th, td { padding: .25em .6em; text-align: right; border-bottom: 1px solid #ddd; white-space: nowrap; }
th { background: #f4f4f4; } td.state { text-align: left; }
.ready { color: #070; } .starting { color: #a60; } .stopping { color: #a00; }
#exits { font-family: ui-monospace, monospace; font-size: 12px; white-space: pre-wrap; }
canvas { width: 100%; max-width: 60em; height: 80px; border: 1px solid #ddd; }
#error { color: #a00; }
@media (max-width: 500px) { .wide { display: none; } }
</style></head>
<body>
<h1>ufork <span id="pid"></span></h1>
<div id="summary">loading...</div><div id="error"></div>
<table><thead><tr><th>id</th><th>pid</th><th>gen</th><th>state</th><th>uptime</th>
<th class="wide">heartbeat</th><th>pss</th><th>uss</th><th class="wide">rss</th><th>requests</th></tr></thead>
<tbody id="workers"></tbody></table>
<h2 style="font-size:1em">requests/s (blue) and restarts (red) since this page opened</h2>
<canvas id="chart" width="600" height="80"></canvas>
<h2 style="font-size:1em">last exits</h2><div id="exits"></div>
<script>
"use strict";
const $ = id => document.getElementById(id);
const samples = [];  // {rate, restarts}, one a second, kept by the page
let last = null;
const secs = s => s < 60 ? s.toFixed(1) + " s" : s < 3600 ? Math.floor(s / 60) + " min" : (s / 3600).toFixed(1) + " h";
const mib = b => b == null ? "-" : (b / 1048576).toFixed(1) + " MiB";
function cell(text, cls) { const td = document.createElement("td"); td.textContent = text; if (cls) td.className = cls; return td; }
async function get(path) { const r = await fetch(path, {cache: "no-store"}); return (await r.json()).data; }
function draw() {
  const c = $("chart"), g = c.getContext("2d"), w = c.width, h = c.height;
  g.clearRect(0, 0, w, h);
  const shown = samples.slice(-w / 4), max = Math.max(1, ...shown.map(s => s.rate));
  const line = (key, color, scale) => {
    g.strokeStyle = color; g.beginPath();
    shown.forEach((s, i) => { const y = h - 2 - (h - 4) * s[key] / scale; i ? g.lineTo(i * 4, y) : g.moveTo(0, y); });
    g.stroke();
  };
  line("rate", "#36c", max);
  line("restarts", "#c33", Math.max(1, ...shown.map(s => s.restarts)));
}
async function tick() {
  try {
    const [status, workers, dead] = await Promise.all([get("/status"), get("/workers"), get("/dead")]);
    $("error").textContent = "";
    $("pid").textContent = "arbiter pid " + status.pid;
    const states = Object.entries(status.workers).map(([k, v]) => v + " " + k).join(", ");
    $("summary").textContent = "size " + status.size + ": " + states + "; up " + secs(status.uptime) +
      "; spawned " + status.counters.spawned + ", exited " + status.counters.exited + ", hung " + status.counters.hung +
      (status.stopping ? "; stopping" : "") +
      (status.scale ? "; autoscaling " + status.scale.min + ".." + status.scale.max + ", target " + status.scale.target +
        ", accept queue " + Object.values(status.scale.queues).reduce((n, q) => n + (q || 0), 0) +
        (status.scale.why ? " (last: " + status.scale.why + ")" : "") : "") + "; pool PSS " +
      mib(workers.reduce((n, w) => n + (w.pss || 0), status.arbiter_memory.pss || 0)) + ", USS " +
      mib(workers.reduce((n, w) => n + (w.uss || 0), status.arbiter_memory.uss || 0));
    const body = $("workers"); body.textContent = "";
    for (const w of workers) {
      const tr = document.createElement("tr");
      tr.append(cell(w.id), cell(w.pid), cell(w.generation), cell(w.state, "state " + w.state), cell(secs(w.uptime)),
                cell(w.heartbeat_age == null ? "-" : w.heartbeat_age.toFixed(2) + " s", "wide"), cell(mib(w.pss)), cell(mib(w.uss)), cell(mib(w.rss), "wide"),
                cell(w.requests));
      body.append(tr);
    }
    $("exits").textContent = dead.slice(-8).reverse().map(d =>
      new Date(d.time * 1000).toLocaleTimeString() + "  worker " + d.id + " pid " + d.pid + " gen " + d.generation + " " + d.reason + ": " + d.status).join("\n") || "none";
    const requests = workers.reduce((n, w) => n + w.requests, 0), now = Date.now() / 1000;
    if (last) samples.push({rate: Math.max(0, requests - last.requests) / (now - last.time),
                            restarts: Math.max(0, status.counters.exited - last.exited)});
    last = {requests, exited: status.counters.exited, time: now};
    draw();
  } catch (e) {
    $("error").textContent = "the arbiter does not answer (" + e + "); trying again";
  }
  setTimeout(tick, 1000);
}
tick();
</script></body></html>
)HTML";

}  // namespace ufork
