// "Edit again" from the history: /?edit=<id> opens that job's input with its mask (as strokes
// to change: white = regenerated, before grow and blur) or its layers, its prompt, engine,
// model and mask settings, ready to generate again.

import { editor, loadImage } from "./canvas.js";
import { say, setField } from "./dom.js";
import { addLayer, maskAsPainted } from "./layers.js";

async function reopen(id) {
  const base = `/api/generations/${encodeURIComponent(id)}`;
  const detail = await fetch(`${base}/`, { credentials: "same-origin" });
  if (!detail.ok) {
    say("That generation could not be opened (deleted, or not yours).", "error");
    return;
  }
  const job = await detail.json();
  const meta = job.metadata;
  const input = await fetch(`${base}/input.png`, { credentials: "same-origin" });
  if (!input.ok || !(await loadImage(new File([await input.blob()], "input.png", { type: "image/png" })))) return;
  setField("engine", meta.engine);
  setField("model", meta.model);
  setField("prompt", meta.prompt);
  setField("negative_prompt", meta.negative_prompt);
  setField("mask_blur", meta.mask_blur);
  setField("mask_grow", meta.mask_grow);
  for (const side of ["left", "right", "top", "bottom"]) setField(`outpaint_${side}`, meta.outpaint?.[side] || 0);
  // A layered job's layers, each with its mask as the job read it; its mask, unless it is
  // only their union.
  for (const [index, layer] of (meta.layers || []).entries()) {
    const mask = await fetch(`${base}/layers/${index}.png`, { credentials: "same-origin" });
    if (mask.ok) addLayer({ name: layer.name, prompt: layer.prompt, picture: await maskAsPainted(await mask.blob(), meta) });
  }
  if (job.mask_image && !meta.mask_from_layers) {
    const mask = await fetch(`${base}/painted-mask.png`, { credentials: "same-origin" });
    if (mask.ok) editor.loadMask(await createImageBitmap(await mask.blob()));
  }
  history.replaceState(null, "", location.pathname); // a reload starts afresh
  say("Opened from the history: change the mask or the prompt, then Generate.");
}

// Called by studio.js once the canvas is set up.
export function reopenFromAddress() {
  const id = new URLSearchParams(location.search).get("edit");
  if (id) reopen(id);
}
