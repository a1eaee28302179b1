// The search page: a text query (GET /api/search) or an uploaded sound or video (POST /api/search);
// each hit becomes a card with a thumbnail, the file name and times, the score and a player that starts
// at the window's start (a media fragment #t=start,end, and currentTime once the metadata is there).
"use strict";

const $ = (id) => document.getElementById(id);

function seconds(t) { return t.toFixed(2); }

function card(hit) {
  const figure = document.createElement("figure");
  figure.className = "hit";
  figure.dataset.path = hit.path;
  figure.dataset.start = hit.start;
  figure.dataset.end = hit.end;
  if (hit.thumbnail) {
    const img = document.createElement("img");
    img.src = hit.thumbnail;
    img.alt = `${hit.name} at ${seconds(hit.start)} s`;
    img.loading = "lazy";
    figure.appendChild(img);
  }
  const player = document.createElement(hit.kind === "video" ? "video" : "audio");
  player.controls = true;
  player.preload = "metadata";
  player.src = `${hit.media}#t=${hit.start},${hit.end}`;
  player.addEventListener("loadedmetadata", () => { player.currentTime = hit.start; }, { once: true });
  figure.appendChild(player);
  const caption = document.createElement("figcaption");
  const score = document.createElement("span");
  score.className = "score";
  score.textContent = hit.score.toFixed(3);
  const name = document.createElement("span");
  name.className = "name";
  name.textContent = hit.name;
  name.title = hit.path;
  const times = document.createElement("div");
  times.className = "times";
  times.textContent = `${seconds(hit.start)}–${seconds(hit.end)} s`;
  caption.append(score, name, times);
  figure.appendChild(caption);
  return figure;
}

async function show(response, what) {
  const status = $("status");
  const body = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  const results = $("results");
  results.replaceChildren();
  if (!response.ok) {
    status.className = "error";
    status.textContent = body.error || `HTTP ${response.status}`;
    return;
  }
  status.className = "";
  status.textContent = `${body.results.length} result(s) for ${what}`;
  results.append(...body.results.map(card));
}

function options() {
  return { k: $("k").value || "12", per_file: $("per-file").checked ? "1" : "0" };
}

$("text-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const q = $("query").value.trim();
  const params = new URLSearchParams({ q, ...options() });
  $("status").textContent = "searching…";
  await show(await fetch(`/api/search?${params}`), `“${q}”`);
});

$("upload-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const file = $("upload").files[0];
  if (!file) { $("status").textContent = "choose a file first"; return; }
  const form = new FormData();
  form.append("file", file);
  for (const [key, value] of Object.entries(options())) form.append(key, value);
  $("status").textContent = "searching…";
  await show(await fetch("/api/search", { method: "POST", body: form }), file.name);
});

fetch("/api/info").then((r) => r.json()).then((info) => {
  $("info").textContent = `${info.files} files, ${info["video windows"] || 0} video and ` +
    `${info["audio windows"] || 0} audio windows`;
}).catch(() => {});
