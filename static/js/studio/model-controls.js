// The controls the chosen model uses, with its defaults: the steps and guidance of its family
// (value and range), and no negative prompt, scheduler or clip skip where its family has none
// (FLUX.1 Fill): those fields are hidden, so they are not sent. Each model option carries its
// family's figures (GET /api/models, "accepts"); without a model picker the form carries the
// server's model's.

import { $, FILL_ENGINES } from "./dom.js";

const SOMETIMES = {
  negative: "negative_prompt", schedulers: "scheduler", clipSkip: "clip_skip", soft: "soft",
  guided: "guidance_scale", // FLUX.2 [klein]: its guidance is distilled into its steps
  fast: "speed", // the fast tier: FLUX.1 Fill and Kontext
  transparent: "background", // a transparent result: a VAE that paints alpha (Qwen-Image-2.1)
};
const PROMPT_HINT = $("prompt").placeholder;

function spec() {
  return $("model")?.selectedOptions[0]?.dataset || $("generate-form").dataset;
}

// Edit by words: the chosen model edits by the prompt (Qwen-Image-Edit, FLUX.1 Kontext), so
// a mask is optional (none: the whole picture is edited). A picked model runs on the diffusers
// engine only; the server's own model on any engine that may choose it.
export function editsByWords() {
  const engine = $("engine").value;
  // (a picked model runs on the engine that runs models, which the server's may too)
  const runs = !FILL_ENGINES.includes(engine);
  return runs && spec().edits === "true";
}

// The reference pictures to send (none where the model reads none).
export function referencePictures() {
  return editsByWords() && Number(spec().references) > 0 ? [...$("reference-input").files] : [];
}

function showEditing() {
  const editing = editsByWords();
  $("edit-field").hidden = !editing;
  $("reference-field").hidden = !(editing && Number(spec().references) > 0);
  $("reference-limit").value = spec().references || "0";
  $("prompt").placeholder = editing ? "What to change, e.g. make it winter" : PROMPT_HINT;
}

function apply() {
  showEditing();
  const chosen = spec();
  if (!chosen.steps) return;
  const steps = $("num_inference_steps");
  Object.assign(steps, { max: chosen.maxSteps, value: chosen.steps });
  const guidance = $("guidance_scale");
  Object.assign(guidance, { min: chosen.guidanceMin, max: chosen.guidanceMax, value: chosen.guidance });
  for (const [key, id] of Object.entries(SOMETIMES)) {
    if ($(id)) $(id).closest(".field").hidden = chosen[key] === "false";
  }
}

$("model")?.addEventListener("change", apply);
$("engine").addEventListener("change", showEditing);
apply();
