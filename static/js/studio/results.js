// The studio's result: it replaces the canvas view, with a before / after slider drawn at one
// scale whatever the sizes (an outpainted result is larger than its input: the input sits at
// its place inside it), samples, download, "use as input" and "back to the mask". Nothing
// happens on import: studio.js calls initResults() (after initCanvas: a resize fits the canvas
// first, then lays out the result at the canvas' new zoom).

import { editor, input, loadImage, showCanvas } from "./canvas.js";
import { $, FILL_ENGINES } from "./dom.js";
import { layersRestore, layersSnapshot } from "./layers.js";
import { thumbnailUrl } from "../http.js";
import { addShortcut } from "../keys.js";

// The outpaint sides of the result on show, its images and the one shown.
const view = { id: null, sides: null, images: [], index: 0, seeds: [] };

// The job and the sample on show ("Upscale" starts a job on it).
export const shownResult = () => ({ id: view.id, index: view.index });

// ----- result ------------------------------------------------------------------------------
export function showResult(id, message) {
  const images = message.images;
  const metadata = message.metadata || {};
  const seeds = metadata.seeds || [metadata.seed];
  view.sides = metadata.outpaint || null;
  $("result-link").href = `/history/${id}/`;
  const upscaled = metadata.engine === "upscale"; // seedless: its size says what it made
  $("result-title").textContent = upscaled ? `Upscaled to ${metadata.width}×${metadata.height}` : "Result";
  $("result-seed-label").hidden = upscaled;
  // What the engine that ran did not follow (a fill engine and a prompt, say), in its words;
  // what it said of the layers (one too small, say) on the layers' own line.
  const warnings = (metadata.warnings || []).filter((w) => w.field !== "layers");
  const fields = [...new Set(warnings.map((w) => w.field.replaceAll("_", " ")))];
  const ranAModel = !upscaled && !FILL_ENGINES.includes(metadata.engine);
  const who = ranAModel ? metadata.model : `the ${metadata.engine} engine`;
  $("result-warnings").textContent = `Not used by ${who}: ${fields.join(", ")}.`;
  $("result-warnings").title = warnings.map((w) => w.message).join("\n");
  $("result-warnings").hidden = warnings.length === 0;
  showLayered(metadata);
  // A generation's project (its picture, layers, parameters and results) to open again.
  $("save-project").href = `/api/generations/${id}/project/`;
  $("save-project").hidden = upscaled;
  // Before: what the job read (an upscale's: the result it upscaled).
  $("before").src = upscaled ? `/api/generations/${id}/input.png` : input.imageUrl;
  const strip = $("samples-strip");
  strip.replaceChildren();
  Object.assign(view, { id, images, seeds, index: 0 });
  images.forEach((url, index) => {
    if (images.length < 2) return;
    const button = document.createElement("button");
    button.type = "button";
    button.className = "thumb";
    button.setAttribute("aria-label", `Show sample ${index + 1}`);
    const img = document.createElement("img");
    img.src = thumbnailUrl(url);
    img.alt = `Sample ${index + 1}`;
    button.append(img);
    button.addEventListener("click", () => show(index));
    strip.append(button);
  });
  $("samples-keys").hidden = images.length < 2;
  show(0);
  $("stage").hidden = true;
  $("brush-cursor").hidden = true;
  $("compare").hidden = false;
  $("result-panel").hidden = false;
  $("draw-tools").classList.add("muted");
  $("layers-panel").classList.add("muted");
  $("editor").classList.add("showing-result"); // the mask's legend and keys make room for it
  setSplit(50);
  $("compare-slider").value = 50;
  layout();
  $("after").addEventListener("load", layout, { once: true });
  bringIntoView();
}

// A layered job: how its layers ran, in words, and what was said of them.
const RAN = {
  "one call": "Layers painted in one call (each prompt only in its layer).",
  "in turn": "Layers painted one after another, bottom up (this engine paints one region at a time).",
};
function showLayered(metadata) {
  const line = $("result-layered");
  const layered = metadata.layered;
  if (!layered) {
    line.hidden = true;
    delete line.dataset.ran;
    return;
  }
  const said = (metadata.warnings || []).filter((w) => w.field === "layers").map((w) => w.message);
  line.textContent = [RAN[layered.ran] || `Layers painted: ${layered.ran}.`, ...said].join(" ");
  line.dataset.ran = layered.ran;
  line.hidden = false;
}

// The result and its buttons on screen together where they fit, the picture's top first if
// not (on a phone the page's scroll-padding keeps both above the pinned Generate bar).
function bringIntoView() {
  $("result-panel").scrollIntoView({ block: "nearest" });
  $("viewport").scrollIntoView({ block: "nearest" });
}

// One of the job's samples in the compare view (the strip marks it; left / right arrows move).
function show(index) {
  if (index < 0 || index >= view.images.length) return;
  view.index = index;
  $("after").src = view.images[index];
  $("download").href = view.images[index];
  $("result-seed").value = view.seeds[index] ?? "-";
  $("result-index").value = view.images.length > 1 ? `${index + 1} of ${view.images.length}` : "";
  for (const [i, thumb] of [...$("samples-strip").children].entries()) {
    thumb.setAttribute("aria-pressed", String(i === index));
  }
}

// The result fitted into the viewport (at most 100%), centred; the input drawn at the same
// scale at its place in the result: pixel for pixel aligned.
// The compare slider's room under the picture (it covered the picture's bottom before).
const SLIDER_ROOM = 30;
function layout() {
  const after = $("after");
  const [w, h] = [after.naturalWidth, after.naturalHeight];
  if (!w || $("compare").hidden) return;
  const viewport = $("viewport");
  // At the scale the canvas had (never larger than fits), the slider below the picture.
  const room = viewport.clientHeight - SLIDER_ROOM;
  const zoom = Math.min(editor.zoom || 1, 1, viewport.clientWidth / w, room / h);
  const [boxW, boxH] = [w * zoom, h * zoom];
  Object.assign($("compare").style, {
    width: `${boxW}px`,
    height: `${boxH}px`,
    left: `${(viewport.clientWidth - boxW) / 2}px`,
    top: `${Math.max(0, (room - boxH) / 2)}px`,
  });
  // Where the input lies in the result: its outpaint offsets, or (same size) the whole frame.
  const sides = view.sides || { left: 0, top: 0 };
  const inputW = editor.width || w;
  const inputH = editor.height || h;
  const sameScale = w === inputW + (sides.left || 0) + (sides.right || 0);
  Object.assign($("before").style, sameScale
    ? {
      left: `${(100 * (sides.left || 0)) / w}%`,
      top: `${(100 * (sides.top || 0)) / h}%`,
      width: `${(100 * inputW) / w}%`,
      height: `${(100 * inputH) / h}%`,
    }
    : { left: "0", top: "0", width: "100%", height: "100%" });
  $("zoom-value").value = `${Math.round(zoom * 100)}%`;
}

function setSplit(percent) {
  $("before-layer").style.clipPath = `inset(0 ${100 - percent}% 0 0)`;
  $("compare-line").style.left = `${percent}%`;
}

export function initResults() {
  window.addEventListener("resize", layout);
  // The arrows flip through the samples while the result is on screen (a focused slider keeps
  // its own: static/js/keys.js).
  const onResult = { when: () => !$("compare").hidden, preventDefault: true };
  addShortcut({ ...onResult, key: "ArrowLeft", run: () => show(view.index - 1) });
  addShortcut({ ...onResult, key: "ArrowRight", run: () => show(view.index + 1) });
  $("compare-slider").addEventListener("input", (e) => setSplit(Number(e.target.value)));
  // Dragging anywhere on the picture moves the divider too.
  $("compare").addEventListener("pointerdown", (event) => {
    if (event.target === $("compare-slider")) return;
    const move = (e) => {
      const box = $("compare").getBoundingClientRect();
      const percent = Math.max(0, Math.min(100, (100 * (e.clientX - box.left)) / box.width));
      $("compare-slider").value = percent;
      setSplit(percent);
    };
    $("compare").setPointerCapture(event.pointerId);
    move(event);
    $("compare").addEventListener("pointermove", move);
    const stop = () => {
      $("compare").removeEventListener("pointermove", move);
      $("compare").removeEventListener("pointerup", stop);
      $("compare").removeEventListener("pointercancel", stop);
    };
    $("compare").addEventListener("pointerup", stop);
    $("compare").addEventListener("pointercancel", stop);
  });

  $("back-to-mask").addEventListener("click", () => {
    showCanvas();
    editor.fit();
  });

  // "Continue from this": the result on show becomes the input, and the mask is kept (at its
  // place in an outpainted result) for a second pass that refines it.
  $("use-as-input").addEventListener("click", async () => {
    const response = await fetch($("after").src, { credentials: "same-origin" });
    const blob = await response.blob();
    const keptLayers = layersSnapshot(); // (the same size: a job with layers takes no outpaint)
    const kept = !keptLayers && editor.hasPaint() ? editor.maskPicture() : null;
    const at = { x: view.sides?.left || 0, y: view.sides?.top || 0 };
    for (const side of ["left", "right", "top", "bottom"]) $(`outpaint_${side}`).value = 0;
    editor.setOutpaint({});
    if (!(await loadImage(new File([blob], "result.png", { type: "image/png" })))) return;
    if (kept) editor.loadMask(kept, at);
    layersRestore(keptLayers);
  });
}
