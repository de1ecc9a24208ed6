// A project file (issue 80): "Save project" is the result bar's link to the job's ZIP
// (GET /api/generations/<id>/project/, set by studio/results.js); "Open project" sends a
// project to POST /api/projects/open and puts its job back in the studio: the picture, its
// layers (names, prompts, masks) or its mask, the prompt and the parameters the form has.

import { postForm } from "../http.js";
import { editor, loadImage, scheduleOverlay } from "./canvas.js";
import { $, clearErrors, say, setField, showErrors } from "./dom.js";
import { addLayer, maskAsPainted } from "./layers.js";

// A data URL as a Blob (the page's CSP lets no fetch read one).
function dataUrlBlob(url) {
  const [head, body] = url.split(",", 2);
  const type = head.slice(5).split(";")[0] || "application/octet-stream";
  const bytes = Uint8Array.from(atob(body), (c) => c.charCodeAt(0));
  return new Blob([bytes], { type });
}

// The fields the form has, from the project's parameters (a value the form has no option for
// is left as it is).
const FIELDS = ["engine", "model", "negative_prompt", "denoising_strength", "num_inference_steps",
  "guidance_scale", "mask_blur", "mask_grow", "inpaint_area", "padding", "scheduler", "clip_skip"];

function fillParameters(prompt, params) {
  setField("prompt", prompt);
  for (const name of FIELDS) setField(name, params[name]);
  if (params.samples) setField("samples", params.samples);
  if ($("soft") && params.soft !== undefined) $("soft").checked = Boolean(params.soft);
  if ($("speed") && params.speed !== undefined) $("speed").checked = params.speed === "fast";
  if (Number.isInteger(params.seed) && params.seed >= 0) { // the seed it ran with
    $("seed-random").checked = false;
    $("seed").disabled = false;
    setField("seed", params.seed);
  }
  for (const side of ["left", "right", "top", "bottom"]) setField(`outpaint_${side}`, params.outpaint?.[side] || 0);
}

async function openProject(file) {
  clearErrors();
  const form = new FormData();
  form.append("project", file, file.name);
  say("Opening the project…");
  const response = await postForm("/api/projects/open", form);
  const body = await response.json().catch(() => ({ message: "The server's answer could not be read." }));
  say("");
  if (!response.ok) {
    showErrors(body.errors || { project: [body.message] }, body.message);
    return;
  }
  const image = dataUrlBlob(body.image);
  const name = file.name.replace(/\.zip$/i, "") + "." + (image.type.split("/")[1] || "png");
  if (!(await loadImage(new File([image], name, { type: image.type })))) return;
  const params = body.params || {};
  fillParameters(body.prompt || "", params);
  for (const layer of body.layers || []) {
    addLayer({ name: layer.name, prompt: layer.prompt, picture: await maskAsPainted(dataUrlBlob(layer.mask), params) });
  }
  if (body.mask && !(body.layers || []).length) editor.loadMask(await maskAsPainted(dataUrlBlob(body.mask), params));
  scheduleOverlay();
  const count = (body.layers || []).length;
  say(count
    ? `Opened the project: ${count} layer${count === 1 ? "" : "s"}, with the prompt and settings it ran with. Change them, then Generate.`
    : "Opened the project, with the prompt and settings it ran with. Change them, then Generate.");
}

export function initProject() {
  $("project-input").addEventListener("change", async (e) => {
    const file = e.target.files[0];
    e.target.value = ""; // the same file may be opened again
    if (file) await openProject(file);
  });
}
