// convstore web: draws the sequence diagram from the page's JSON block and follows the
// live view. Stored text only ever reaches the page as text nodes (textContent) and
// attribute values (setAttribute): never as markup.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const LANE_W = 150, HEAD_H = 46, ROW_H = 30, PAD = 20;
const KNOWN = {
  task_assignment: "#2563eb", result_report: "#16a34a", collaboration_request: "#9333ea",
  feedback: "#ca8a04", communication: "#475569", status_update: "#0891b2",
  error_report: "#dc2626", task_completion: "#15803d", progress_update: "#0d9488",
  clarification_request: "#c026d3", user: "#334155", assistant: "#7c3aed",
  master_controller: "#1d4ed8", tool: "#b45309", system: "#6b7280",
};

function colour(type) {
  if (KNOWN[type]) return KNOWN[type];
  let h = 0;
  for (const c of type) h = (h * 31 + c.codePointAt(0)) % 360;
  return `hsl(${h}, 60%, 42%)`;
}

function el(name, attrs, text) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

function draw(target, data) {
  // Built off-document and swapped in at once: one layout for the whole diagram.
  const svg = target.cloneNode(false);
  const lanes = data.lanes, arrows = data.arrows;
  const x = new Map(lanes.map((lane, i) => [lane.id, PAD + LANE_W / 2 + i * LANE_W]));
  const width = PAD * 2 + LANE_W * Math.max(lanes.length, 1);
  const height = HEAD_H + ROW_H * (arrows.length + 1);
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const defs = el("defs");
  const types = [...new Set(arrows.map((a) => a.type))];
  types.forEach((type, i) => {
    const marker = el("marker", {id: `head-${i}`, viewBox: "0 0 10 10", refX: 9, refY: 5,
      markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse"});
    marker.appendChild(el("path", {d: "M0,0 L10,5 L0,10 z", fill: colour(type)}));
    defs.appendChild(marker);
  });
  svg.appendChild(defs);
  for (const lane of lanes) {
    const g = el("g", {class: "lane", "data-lane": lane.id});
    const cx = x.get(lane.id);
    g.appendChild(el("line", {x1: cx, y1: HEAD_H - 6, x2: cx, y2: height, class: "lifeline"}));
    g.appendChild(el("rect", {x: cx - LANE_W / 2 + 8, y: 4, width: LANE_W - 16, height: HEAD_H - 14,
      rx: 6, class: `lane-head t-${lane.type}`}));
    const name = el("text", {x: cx, y: 20, class: "lane-name"}, lane.id);
    name.appendChild(el("title", {}, `${lane.id} (${lane.type}${lane.role ? " · " + lane.role : ""})`));
    g.appendChild(name);
    g.appendChild(el("text", {x: cx, y: 34, class: "lane-type"}, lane.role || lane.type));
    svg.appendChild(g);
  }
  arrows.forEach((a, i) => {
    const y = HEAD_H + ROW_H * (i + 1);
    const from = x.get(a.from), to = a.to === null ? undefined : x.get(a.to);
    const stroke = colour(a.type), marker = `url(#head-${types.indexOf(a.type)})`;
    const g = el("g", {class: "arrow", "data-from": a.from, "data-to": a.to === null ? "" : a.to,
      "data-type": a.type, "data-message-id": a.message_id});
    if (to === undefined || to === from) {  // a note on the sender's lane
      g.appendChild(el("path", {d: `M${from},${y - 8} h26 v12 h-24`, fill: "none", stroke,
        "stroke-width": 1.6, "marker-end": marker}));
      g.appendChild(el("text", {x: from + 32, y: y, class: "label", "text-anchor": "start"}, a.label));
    } else {
      const dir = to > from ? 1 : -1;
      g.appendChild(el("line", {x1: from, y1: y, x2: to - dir * 3, y2: y, stroke,
        "stroke-width": 1.6, "marker-end": marker}));
      g.appendChild(el("text", {x: (from + to) / 2, y: y - 5, class: "label"}, a.label));
    }
    g.appendChild(el("title", {}, `${a.type}: ${a.from} → ${a.to === null ? "·" : a.to}\n${a.timestamp}`));
    svg.appendChild(g);
  });
  target.replaceWith(svg);
  return svg;
}

function listItem(message, a, index) {
  const li = document.createElement("li");
  li.className = "msg new";
  li.dataset.messageId = a.message_id;
  const head = document.createElement("div");
  head.className = "head";
  const parts = [["idx", `#${index}`], ["who", a.from], [null, " → "], ["who", a.to === null ? "·" : a.to],
    ["tag", a.type], ["time", message.timestamp]];
  for (const [cls, text] of parts) {
    const span = document.createElement(cls === "time" ? "time" : "span");
    if (cls && cls !== "time") span.className = cls;
    span.textContent = text;
    head.appendChild(span);
    head.appendChild(document.createTextNode(" "));
  }
  const content = document.createElement("div");
  content.className = "content";
  content.textContent = typeof message.content === "string" ? message.content : JSON.stringify(message.content);
  const details = document.createElement("details");
  const summary = document.createElement("summary");
  summary.textContent = "metadata";
  const pre = document.createElement("pre");
  pre.textContent = JSON.stringify(message.metadata, null, 2);
  details.append(summary, pre);
  li.append(head, content, details);
  return li;
}

function follow(svg, data) {
  const live = document.getElementById("live");
  if (!live || !window.EventSource) return;
  const status = document.getElementById("live-status");
  const list = document.getElementById("messages");
  const count = document.getElementById("count");
  const seen = new Set(data.arrows.map((a) => a.message_id));
  const source = new EventSource(`${live.dataset.url}?after=${encodeURIComponent(live.dataset.after)}`);
  source.onopen = () => { status.textContent = "live"; status.className = "live"; };
  source.onerror = () => { status.textContent = "reconnecting…"; status.className = "live off"; };
  source.addEventListener("gone", () => { source.close(); status.textContent = "session deleted"; });
  source.addEventListener("message", (event) => {
    const payload = JSON.parse(event.data);
    const a = payload.arrow;
    if (seen.has(a.message_id)) return;  // the page and the stream may overlap by one read
    seen.add(a.message_id);
    a.index = data.arrows.length;
    data.arrows.push(a);
    if (!data.lanes.some((lane) => lane.id === a.from)) data.lanes.push({id: a.from, type: "unlisted", role: ""});
    if (a.to !== null && !data.lanes.some((lane) => lane.id === a.to)) data.lanes.push({id: a.to, type: "unlisted", role: ""});
    svg = draw(svg, data);
    list.appendChild(listItem(payload.message, a, data.arrows.length));
    count.textContent = String(Number(count.textContent) + 1);
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const block = document.getElementById("diagram-data");
  const svg = document.getElementById("diagram");
  if (!block || !svg) return;
  const data = JSON.parse(block.textContent);
  follow(draw(svg, data), data);
});
