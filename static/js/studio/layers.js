// The studio's layers (issue 80): each layer a mask and a prompt, sent bottom up as one job's
// ``layers`` and ``layer_masks``. One MaskEditor paints them all: the active layer's mask is
// the editor's (its undo history with it), the others wait as pictures (white = regenerated,
// on black) and show on #layers-canvas, inside the editor's stage (so they follow zoom and
// pan), each in its own colour; the red overlay is the server's effective mask of the
// visible layers' union, as for one mask. No layers: the studio's one mask and one prompt,
// as before. Nothing happens on import: studio.js calls initLayers() after initCanvas().

import { editor, scheduleOverlay, useLayeredMask } from "./canvas.js";
import { $ } from "./dom.js";

// At most this many layers a job (engine.layers.MAX_LAYERS, given by the page: the server
// refuses more, in its own words), each with a colour of its own, none the regenerated
// area's red (the palette has one for each).
const MAX_LAYERS = Number($("layers-panel").dataset.maxLayers);
const PALETTE = [
  [37, 110, 255], [22, 163, 74], [234, 150, 12], [200, 40, 200],
  [14, 165, 190], [120, 80, 255], [120, 180, 20], [150, 90, 40],
];
const LAYER_ALPHA = 0.55; // the other layers' overlay
const THUMB = 40;          // the longer side of a row's thumbnail, CSS pixels

// Bottom up: {name, prompt, colour, hidden, picture, history, tinted, row}. The active
// layer's picture and history are the editor's (null here) until another layer is chosen.
const layers = [];
let active = null;
let made = 0; // layers made since the picture came ("Layer N")

// ----- reading the layers ----------------------------------------------------------------
export const hasLayers = () => layers.length > 0;

// A layer's mask as a picture (white = regenerated, on black), or null: nothing painted.
function pictureOf(layer) {
  return layer === active ? editor.maskPicture() : layer.picture;
}

function painted(layer) {
  if (layer === active) return editor.hasPaint();
  if (!layer.picture) return false;
  const px = layer.picture.getContext("2d").getImageData(0, 0, layer.picture.width, layer.picture.height).data;
  for (let i = 0; i < px.length; i += 4) if (px[i]) return true;
  return false;
}

const png = (canvas) => new Promise((done) => canvas.toBlob(done, "image/png"));

// The visible layers' union (each pixel the most any of them regenerates), for the overlay:
// what the server regenerates when a job sends layers and no mask.
async function unionMask() {
  const shown = layers.filter((layer) => !layer.hidden && painted(layer));
  if (!shown.length) return null;
  const canvas = document.createElement("canvas");
  [canvas.width, canvas.height] = [editor.width, editor.height];
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.globalCompositeOperation = "lighten";
  for (const layer of shown) ctx.drawImage(pictureOf(layer), 0, 0);
  return { blob: await png(canvas), mode: "white_inpaints", invert: false };
}

// What Generate sends: the visible layers, bottom up, each with its mask (a PNG the picture's
// size, white = regenerated: the studio's polarity, sent as mask_mode=white_inpaints); null
// with no layers; ``problem`` where there is nothing to send.
export async function layeredJob() {
  if (!layers.length) return null;
  const sent = layers.filter((layer) => !layer.hidden);
  if (!sent.length) {
    return { problem: "Every layer is hidden: show one (its eye) to send it, or delete the layers to paint one mask." };
  }
  const empty = sent.find((layer) => !painted(layer));
  if (empty) return { problem: `“${label(empty)}” has nothing painted: paint it, hide it or delete it.` };
  return {
    layers: sent.map((layer) => ({ name: label(layer), prompt: layer.prompt })),
    masks: await Promise.all(sent.map((layer) => png(pictureOf(layer)))),
  };
}

const label = (layer) => layer.name.trim() || `Layer ${layers.indexOf(layer) + 1}`;

// A mask file as a job read it (``rules``: its mask_mode and invert_mask; DreamLayer's own
// default: black regenerates), as the editor paints it: white = regenerated, on black, the
// picture's size. A project's masks and a job's from the history come back this way.
export async function maskAsPainted(blob, rules) {
  const bitmap = await createImageBitmap(blob);
  const canvas = document.createElement("canvas");
  [canvas.width, canvas.height] = [editor.width, editor.height];
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  bitmap.close();
  if ((rules.mask_mode === "white_inpaints") === Boolean(rules.invert_mask)) { // black regenerates
    ctx.globalCompositeOperation = "difference";
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
  }
  return canvas;
}

// ----- changing them ---------------------------------------------------------------------
// A new layer on top, made the active one. The first takes what is painted already (the one
// mask becomes Layer 1); ``picture``: its mask (a project's), white = regenerated.
export function addLayer({ name = null, prompt = "", picture = null } = {}) {
  if (!editor.width || layers.length >= MAX_LAYERS) return null;
  const used = new Set(layers.map((layer) => layer.colour));
  const colour = PALETTE.find((c) => !used.has(c)) || PALETTE[layers.length % PALETTE.length];
  made += 1;
  const layer = { name: name ?? `Layer ${made}`, prompt, colour, hidden: false, picture, history: null, tinted: null };
  const keepPainting = !layers.length && !picture; // the one mask becomes this layer's
  layers.push(layer);
  if (keepPainting) active = layer;
  else activate(layer);
  render();
  return layer;
}

// The layer painted from now on: the editor's mask goes to the old one, the new one's comes in.
function activate(layer) {
  if (layer === active) return;
  const out = editor.swapMask(layer.picture, layer.history);
  if (active) Object.assign(active, { picture: out.picture, history: out.history, tinted: null });
  Object.assign(layer, { picture: null, history: null, tinted: null });
  active = layer;
}

function remove(layer) {
  const index = layers.indexOf(layer);
  layers.splice(index, 1);
  if (layer === active) {
    active = null;
    const next = layers[Math.min(index, layers.length - 1)];
    if (next) activate(next);
    else editor.swapMask(null); // none left: the studio's one mask, empty
  }
  if (!layers.length) made = 0;
  render();
  scheduleOverlay();
}

function move(layer, by) {
  const from = layers.indexOf(layer);
  const to = from + by;
  if (to < 0 || to >= layers.length) return;
  [layers[from], layers[to]] = [layers[to], layers[from]];
  render();
}

// Every layer gone (another picture: its masks were the old one's).
function reset() {
  layers.length = 0;
  active = null;
  made = 0;
  render();
}

// The layers as they are, and back ("Continue from this": the same picture's size, its
// layers kept for another pass).
export function layersSnapshot() {
  if (!layers.length) return null;
  return layers.map((layer) => ({ ...layer, picture: pictureOf(layer), active: layer === active }));
}

export function layersRestore(snapshot) {
  if (!snapshot) return;
  reset();
  let painting = null;
  for (const saved of snapshot) {
    const layer = addLayer({ name: saved.name, prompt: saved.prompt, picture: saved.picture });
    if (layer) layer.hidden = saved.hidden;
    if (saved.active) painting = layer;
  }
  if (painting) activate(painting);
  render();
  scheduleOverlay();
}

// ----- showing them ----------------------------------------------------------------------
// A layer not being painted: its mask in its colour (transparent elsewhere), made once.
function tinted(layer) {
  if (layer.tinted) return layer.tinted;
  const canvas = document.createElement("canvas");
  [canvas.width, canvas.height] = [editor.width, editor.height];
  const ctx = canvas.getContext("2d");
  const picture = pictureOf(layer);
  if (picture) {
    ctx.drawImage(picture, 0, 0);
    tint(ctx, canvas.width, canvas.height, layer.colour);
  }
  layer.tinted = canvas; // (made again once its picture changes: activate())
  return canvas;
}

// The other visible layers over the picture, each in its colour, bottom up.
function drawOthers() {
  const canvas = $("layers-canvas");
  if (canvas.width !== editor.width || canvas.height !== editor.height) {
    [canvas.width, canvas.height] = [editor.width, editor.height];
  }
  canvas.style.left = `${editor.pad.left}px`;
  canvas.style.top = `${editor.pad.top}px`;
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.globalAlpha = LAYER_ALPHA;
  for (const layer of layers) {
    if (layer !== active && !layer.hidden && layer.picture) ctx.drawImage(tinted(layer), 0, 0);
  }
  canvas.hidden = !layers.length;
}

function drawThumb(layer) {
  const thumb = layer.row?.querySelector("canvas");
  if (!thumb || !editor.width) return;
  const scale = THUMB / Math.max(editor.width, editor.height);
  const [w, h] = [Math.max(1, Math.round(editor.width * scale)), Math.max(1, Math.round(editor.height * scale))];
  if (thumb.width !== w || thumb.height !== h) [thumb.width, thumb.height] = [w, h];
  const ctx = thumb.getContext("2d", { willReadFrequently: true });
  ctx.clearRect(0, 0, w, h);
  const picture = pictureOf(layer);
  if (!picture) return;
  ctx.drawImage(picture, 0, 0, w, h); // (tinted at the thumbnail's size: cheap at every stroke)
  tint(ctx, w, h, layer.colour);
}

// A mask drawn on ``ctx`` (white = the layer's) made its colour, its whiteness the alpha.
function tint(ctx, width, height, [r, g, b]) {
  const data = ctx.getImageData(0, 0, width, height);
  const px = data.data;
  for (let i = 0; i < px.length; i += 4) {
    px[i + 3] = px[i];
    px[i] = r; px[i + 1] = g; px[i + 2] = b;
  }
  ctx.putImageData(data, 0, 0);
}

function button(text, title, onClick, className = "secondary") {
  const element = document.createElement("button");
  element.type = "button";
  element.className = className;
  element.textContent = text;
  element.title = title;
  element.setAttribute("aria-label", title);
  element.addEventListener("click", onClick);
  return element;
}

function field(className, value, name, maxLength, onInput) {
  const element = document.createElement("input");
  element.type = "text";
  element.className = className;
  element.value = value;
  element.maxLength = maxLength;
  element.setAttribute("aria-label", name);
  element.addEventListener("input", () => onInput(element.value));
  return element;
}

// A row: which layer is painted, its thumbnail, name, prompt, eye, up, down, delete.
function rowFor(layer, index) {
  const row = document.createElement("li");
  row.className = "layer";
  row.dataset.index = String(index);
  row.style.setProperty("--layer", `rgb(${layer.colour.join(", ")})`);
  const name = label(layer);
  const pick = document.createElement("input");
  pick.type = "radio";
  pick.name = "active-layer";
  pick.className = "layer-pick";
  pick.checked = layer === active;
  pick.setAttribute("aria-label", `Paint ${name}`);
  pick.title = "Paint this layer";
  pick.addEventListener("change", () => { activate(layer); render(); });
  const thumb = document.createElement("canvas");
  thumb.className = "layer-thumb";
  thumb.setAttribute("aria-hidden", "true");
  thumb.addEventListener("click", () => { activate(layer); render(); });
  const promptMax = Number($("layers-panel").dataset.promptMax) || 1000;
  const nameField = field("layer-name", layer.name, `${name}: name`, 80, (value) => {
    layer.name = value;
  });
  const promptField = field("layer-prompt", layer.prompt, `${name}: prompt`, promptMax, (value) => {
    layer.prompt = value;
  });
  promptField.placeholder = "What to paint in this layer";
  const eye = button(layer.hidden ? "Show" : "Hide", layer.hidden ? `Show ${name}` : `Hide ${name} (a hidden layer is not sent)`, () => {
    layer.hidden = !layer.hidden;
    render();
    scheduleOverlay();
  }, "secondary layer-eye");
  eye.setAttribute("aria-pressed", String(layer.hidden));
  const top = index === layers.length - 1;
  const up = button("↑", `Move ${name} up (painted later, over those below)`, () => move(layer, 1));
  const down = button("↓", `Move ${name} down`, () => move(layer, -1));
  up.disabled = top;
  down.disabled = index === 0;
  const drop = button("✕", `Delete ${name}`, () => remove(layer), "danger");
  const tools = document.createElement("span");
  tools.className = "layer-tools";
  tools.append(eye, up, down, drop);
  row.append(pick, thumb, nameField, promptField, tools);
  row.classList.toggle("active", layer === active);
  row.classList.toggle("hidden-layer", layer.hidden);
  return row;
}

// The panel, the other layers' overlay and what the form shows, from the layers as they are.
function render() {
  const list = $("layer-list");
  // (top first: the layer painted last, over the others, heads the list)
  const rows = layers.map((layer, index) => (layer.row = rowFor(layer, index)));
  list.replaceChildren(...rows.reverse());
  for (const layer of layers) drawThumb(layer);
  drawOthers();
  const any = layers.length > 0;
  $("layer-add").disabled = layers.length >= MAX_LAYERS || !editor.width;
  $("layer-add").title = layers.length >= MAX_LAYERS
    ? `At most ${MAX_LAYERS} layers a job`
    : "A new layer on top: its own mask and prompt";
  $("layers-panel").classList.toggle("has-layers", any);
  $("layers-help").textContent = any
    ? "● the layer painted · the top one is painted last · a hidden one is not sent"
    : "A mask and a prompt each, painted in one job (the first takes what is painted now).";
  // A job with layers makes one picture and takes no uploaded mask.
  const samples = $("samples");
  if (any && !samples.disabled) {
    samples.dataset.before = samples.value;
    samples.value = "1";
    samples.disabled = true;
  } else if (!any && samples.disabled) {
    samples.value = samples.dataset.before || samples.value;
    samples.disabled = false;
  }
  $("samples-layers-note").hidden = !any;
  $("mode-upload").disabled = any;
  $("mode-upload").title = any ? "Layers are painted: delete them to upload one mask" : "";
}

export function initLayers() {
  useLayeredMask(() => (layers.length ? unionMask() : undefined));
  $("layer-add").addEventListener("click", () => { addLayer(); scheduleOverlay(); });
  // A stroke, a shape, undo, a selection: the active layer's thumbnail follows.
  $("studio").addEventListener("studio:mask", () => { if (active) drawThumb(active); });
  $("studio").addEventListener("studio:image", reset);
  $("studio").addEventListener("studio:outpaint", drawOthers);
  render();
}
