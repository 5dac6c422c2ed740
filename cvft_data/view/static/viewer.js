// cvft view: a paged, filtered grid of a dataset's images; click one for its labels, predictions,
// findings, ledger entries and meta. Everything comes from the local server's JSON API.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const state = { page: 1, perPage: 48, total: 0, summary: null };
const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v !== undefined && v !== null) node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

async function getJSON(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: ${r.status}`);
  return r.json();
}

function filters() {
  const params = new URLSearchParams();
  for (const s of document.querySelectorAll("#filters select")) if (s.value) params.set(s.name, s.value);
  return params;
}

function fillSelect(name, counts) {
  const select = document.querySelector(`#filters select[name=${name}]`);
  for (const [value, n] of Object.entries(counts)) select.append(el("option", { value }, `${value} (${n})`));
}

function thumbFigure(img, onOpen) {
  const caption = el("figcaption", {}, el("b", {}, img.labels.length ? img.labels.join(", ") : img.status), el("br"),
    el("span", { class: "id" }, `${img.split}: ${img.image_id}`));
  for (const f of img.findings || []) caption.append(" ", el("span", { class: "tag" }, f));
  const fig = el("figure", { class: "thumb", "data-key": img.key, "data-image-id": img.image_id, tabindex: 0 },
    el("img", { src: `/thumb/${img.key}`, alt: img.image_id, loading: "lazy" }), caption);
  fig.addEventListener("click", () => onOpen(img.key));
  fig.addEventListener("keydown", (e) => { if (e.key === "Enter") onOpen(img.key); });
  return fig;
}

async function loadPage() {
  const params = filters();
  params.set("page", state.page);
  params.set("per_page", state.perPage);
  const data = await getJSON(`/api/images?${params}`);
  state.total = data.total;
  const grid = $("grid");
  grid.replaceChildren(...data.images.map((img) => thumbFigure(img, openDetail)));
  const pages = Math.max(1, Math.ceil(data.total / state.perPage));
  $("pageinfo").textContent = `${data.total} images, page ${state.page} of ${pages}`;
  $("prev").disabled = state.page <= 1;
  $("next").disabled = state.page >= pages;
  grid.dataset.total = data.total;
  grid.dataset.ready = "1";
}

function drawLabels(svg, anns, cls, side) {
  // the SVG is in image pixels and scaled to the screen: text is sized to the image, not in px
  const fs = Math.max(side / 40, 4);
  const group = el("svg:g", { class: cls, "font-size": fs, "stroke-width": fs / 5 });
  for (const a of anns) {
    if (!a.bbox || a.segment !== undefined) continue;
    for (const poly of a.polygons || []) {
      const pts = [];
      for (let i = 0; i + 1 < poly.length; i += 2) pts.push(`${poly[i]},${poly[i + 1]}`);
      group.append(el("svg:polygon", { points: pts.join(" "), fill: a.colour, stroke: a.colour }));
    }
    const [x, y, w, h] = a.bbox;
    group.append(el("svg:rect", { class: cls === "labels" ? "box" : "pred", x, y, width: w, height: h,
      stroke: a.colour, "data-class": a.class }));
    const text = a.score !== null && a.score !== undefined ? `${a.class} ${a.score.toFixed(2)}` : a.class;
    // labels above the box, predictions inside its bottom edge: the two never cover each other
    const ty = cls === "labels" ? (y >= fs ? y - fs / 4 : y + fs) : y + h - fs / 4;
    group.append(el("svg:text", { x: x + fs / 6, y: ty, class: `${cls}-text` }, text));
  }
  svg.append(group);
}

function table(anns, withScore) {
  const rows = anns.map((a) => el("tr", {}, el("td", {}, el("span", { style: `color:${a.colour}` }, "\u25A0"), " ", a.class),
    el("td", {}, a.bbox ? a.bbox.map((v) => Math.round(v)).join(", ") : "image label"),
    el("td", {}, withScore && a.score != null ? a.score.toFixed(3) : Object.keys(a.attributes || {}).length
      ? JSON.stringify(a.attributes) : "")));
  return rows.length ? rows : [el("tr", {}, el("td", {}, "none"))];
}

async function openDetail(key) {
  const d = await getJSON(`/api/image/${key}`);
  $("detail-title").textContent = `${d.image_id} (${d.split}, ${d.status}${d.group ? ", group " + d.group : ""})`;
  const svg = $("canvas");
  svg.setAttribute("viewBox", `0 0 ${d.width} ${d.height}`);
  svg.dataset.key = key;
  svg.replaceChildren(el("svg:image", { href: `/image/${key}`, x: 0, y: 0, width: d.width, height: d.height }));
  if (d.has_masks) {
    svg.append(el("svg:image", { class: "masks", href: `/mask/${key}`, x: 0, y: 0, width: d.width, height: d.height }));
  }
  const side = Math.max(d.width, d.height);
  drawLabels(svg, d.annotations, "labels", side);
  if (d.predictions) drawLabels(svg, d.predictions, "predictions", side);
  $("labels").replaceChildren(...table(d.annotations, false));
  for (const node of document.querySelectorAll(".preds")) node.hidden = !d.predictions;
  if (d.predictions) $("predictions").replaceChildren(...table(d.predictions, true));
  const findings = d.findings.map((f) => {
    const box = el("div", { class: "finding" }, el("span", { class: f.severity }, `${f.check}: `), f.message);
    if (f.compare.length) {
      const row = el("div", { class: "compare" },
        thumbFigure({ key, image_id: d.image_id, split: d.split, labels: [], status: "this image" }, openDetail));
      for (const c of f.compare) row.append(thumbFigure({ ...c, labels: [], status: "compare" }, openDetail));
      box.append(row);
    }
    return box;
  });
  $("detail-findings").replaceChildren(...(findings.length ? findings : [el("p", {}, "none")]));
  $("ledger").replaceChildren(...(d.ledger.length ? d.ledger.map((e) => el("p", {}, `${e.reason} (${e.action}): ${e.detail || e.item}`))
    : [el("p", {}, "nothing dropped or changed")]));
  $("meta").textContent = JSON.stringify(d.meta, null, 2);
  applyToggles();
  $("detail").hidden = false;
  $("detail").dataset.key = key;
}

function applyToggles() {
  for (const g of document.querySelectorAll("#canvas g.labels")) g.style.display = $("show-labels").checked ? "" : "none";
  for (const g of document.querySelectorAll("#canvas g.predictions")) g.style.display = $("show-preds").checked ? "" : "none";
}

function closeDetail() {
  $("detail").hidden = true;
}

async function start() {
  const s = await getJSON("/api/summary");
  state.summary = s;
  $("dataset").textContent = `${s.path}: ${s.task}, ${s.images} images`;
  for (const name of ["split", "class", "status", "group", "finding"]) fillSelect(name, s.facets[name]);
  $("findings").replaceChildren(...s.findings.map((f) => el("div", {}, el("span", { class: f.severity }, `${f.severity} ${f.check}`),
    `: ${f.message}`)));
  document.querySelector("#filters").addEventListener("change", () => { state.page = 1; loadPage(); });
  $("prev").addEventListener("click", () => { state.page -= 1; loadPage(); });
  $("next").addEventListener("click", () => { state.page += 1; loadPage(); });
  $("close").addEventListener("click", closeDetail);
  $("show-labels").addEventListener("change", applyToggles);
  $("show-preds").addEventListener("change", applyToggles);
  document.addEventListener("keydown", (e) => { if (e.key === "Escape") closeDetail(); });
  $("detail").addEventListener("click", (e) => { if (e.target === $("detail")) closeDetail(); });
  await loadPage();
}

start();
