// crackscope serve: the page. Photos dropped or chosen (or a folder named) start a job of their own
// (POST /api/jobs); the page polls its progress (GET /api/jobs/{id}) and then shows each photo's
// overlay with its crack table. Each tab keeps its own job id, so tabs never mix results.
"use strict";

const MAX_ROWS = 200; // crack rows shown per photo; all of them are in its cracks.csv
const $ = (id) => document.getElementById(id);
let currentJob = null;

function fmt(value, digits) {
  return value === "" || value === null || value === undefined ? "" : Number(value).toFixed(digits);
}

function el(tag, attrs, children) {
  const node = document.createElement(tag);
  Object.entries(attrs || {}).forEach(([key, value]) => {
    if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  });
  (children || []).forEach((child) => node.appendChild(child));
  return node;
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

function options(form) {
  ["mm_per_pixel", "mode", "scale", "models"].forEach((name) => form.append(name, $(name).value));
  return form;
}

async function detail(response) {
  try {
    const body = await response.json();
    return body.detail || response.statusText;
  } catch (err) {
    return response.status + " " + response.statusText;
  }
}

async function start(form) {
  showError("");
  $("results").hidden = true;
  $("photos-list").replaceChildren();
  $("run").hidden = false;
  $("progress").removeAttribute("value");
  $("status").textContent = "uploading...";
  const response = await fetch("/api/jobs", { method: "POST", body: options(form) });
  if (!response.ok) {
    $("run").hidden = true;
    showError(await detail(response));
    return;
  }
  const job = await response.json();
  currentJob = job.job;
  poll(job.job);
}

async function poll(jobId) {
  if (jobId !== currentJob) return; // a newer job of this tab replaced it
  const response = await fetch("/api/jobs/" + encodeURIComponent(jobId));
  if (!response.ok) {
    showError(await detail(response));
    return;
  }
  const state = await response.json();
  $("progress").max = Math.max(state.total, 1);
  $("progress").value = state.done;
  $("status").textContent = state.done + " of " + state.total + " photos inspected";
  if (state.status === "failed") {
    $("run").hidden = true;
    showError(state.error);
  } else if (state.status === "done") {
    render(state);
  } else {
    setTimeout(() => poll(jobId), 400);
  }
}

function crackTable(photo, mm) {
  const head = ["#", "length (px)", "max width (px)", "mean width (px)", "area (px)"];
  if (mm) head.push("length (mm)", "max width (mm)", "mean width (mm)", "area (mm²)");
  const rows = photo.cracks.slice(0, MAX_ROWS).map((c) => {
    const cells = [c.index, fmt(c.length_px, 1), fmt(c.max_width_px, 1), fmt(c.mean_width_px, 1), c.area_px];
    if (mm) cells.push(fmt(c.length_mm, 2), fmt(c.max_width_mm, 2), fmt(c.mean_width_mm, 2), fmt(c.area_mm2, 2));
    return el("tr", {}, cells.map((v) => el("td", { text: String(v) })));
  });
  return el("table", { class: "cracks" }, [
    el("thead", {}, [el("tr", {}, head.map((h) => el("th", { text: h })))]),
    el("tbody", {}, rows),
  ]);
}

function render(state) {
  $("run").hidden = true;
  $("results").hidden = false;
  $("zip").href = state.links.zip;
  $("index").href = state.links.index;
  const list = $("photos-list");
  state.photos.forEach((photo) => {
    const c = photo.summary.cracks;
    const mm = c.mm_per_pixel !== null;
    const unit = mm ? "mm" : "px";
    const longest = photo.cracks.length ? photo.cracks[0]["length_" + unit] : 0;
    const line =
      c.count + (c.count === 1 ? " crack" : " cracks") + "; longest " + fmt(longest, mm ? 2 : 1) + " " + unit +
      ", widest " + fmt(c["max_width_" + unit], mm ? 2 : 1) + " " + unit +
      ", total length " + fmt(c["total_length_" + unit], mm ? 2 : 1) + " " + unit +
      " (" + photo.summary.width + " x " + photo.summary.height + " px, " + photo.summary.mode + ")";
    const links = el("p", { class: "links" }, ["overlay_png", "mask_png", "cracks_csv", "summary_json"].map(
      (key) => el("a", { href: photo.links[key], target: "_blank", text: key.replace("_", ".") })));
    const children = [
      el("h2", { text: photo.file }),
      el("p", { class: "summary", text: line }),
      el("img", { class: "overlay", src: photo.links.overlay_png, alt: "overlay of " + photo.file }),
      links,
    ];
    if (photo.cracks.length) children.push(crackTable(photo, mm));
    else children.push(el("p", { text: "No crack found." }));
    if (photo.cracks.length > MAX_ROWS) {
      children.push(el("p", { text: "... and " + (photo.cracks.length - MAX_ROWS) + " more in cracks.csv" }));
    }
    list.appendChild(el("article", { class: "photo", "data-file": photo.file }, children));
  });
  $("skipped").hidden = !state.skipped.length;
  $("skipped-list").replaceChildren(...state.skipped.map((s) => el("li", { text: s.file + ": " + s.reason })));
}

function upload(files) {
  if (!files.length) return;
  const form = new FormData();
  Array.from(files).forEach((file) => form.append("files", file, file.name));
  start(form);
}

async function init() {
  const [models, settings] = await Promise.all([fetch("/api/models"), fetch("/api/settings")]);
  const m = await models.json();
  Object.entries(m.pairs).forEach(([name, what]) => {
    const option = el("option", { value: name, text: name + ": " + what });
    if (name === m.default_pair) option.selected = true;
    $("models").appendChild(option);
  });
  const s = await settings.json();
  $("root").textContent = "a folder under " + s.root;
  $("limit").textContent = "any image format, up to " + s.max_upload_mb + " MB a photo";
}

$("photos").addEventListener("change", (event) => {
  upload(event.target.files);
  event.target.value = "";
});
["dragenter", "dragover"].forEach((type) =>
  $("drop").addEventListener(type, (event) => {
    event.preventDefault();
    $("drop").classList.add("over");
  }));
["dragleave", "drop"].forEach((type) =>
  $("drop").addEventListener(type, () => $("drop").classList.remove("over")));
$("drop").addEventListener("drop", (event) => {
  event.preventDefault();
  upload(event.dataTransfer.files);
});
$("folder-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const form = new FormData();
  form.append("folder", $("folder").value);
  start(form);
});
init();
