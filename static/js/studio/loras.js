// The LoRA picker: add library LoRAs made for the chosen model's family, each with its
// strength; the form sends them as the `loras` JSON list.

import { $ } from "./dom.js";

const list = $("lora-list");

function modelFamily() {
  const option = $("model") && $("model").selectedOptions[0];
  return option ? option.dataset.family : null;
}

function chosen() {
  return [...list.querySelectorAll("li")].map((row) => ({
    name: row.dataset.name,
    weight: Number(row.querySelector("input").value),
  }));
}

// Options of another family than the model's, or already added, cannot be added.
function refresh() {
  const family = modelFamily();
  const taken = new Set(chosen().map((lora) => lora.name));
  for (const option of $("lora-pick").options) {
    option.disabled = taken.has(option.value) || (family && option.dataset.family !== family);
  }
  const usable = [...$("lora-pick").options].filter((option) => !option.disabled);
  if ($("lora-pick").selectedOptions[0]?.disabled && usable.length) usable[0].selected = true;
  $("lora-add").disabled = !usable.length || chosen().length >= Number(list.dataset.max);
}

function addRow(name) {
  const row = document.createElement("li");
  row.dataset.name = name;
  const title = document.createElement("span");
  title.textContent = name;
  const slider = document.createElement("input");
  Object.assign(slider, { type: "range", min: list.dataset.minWeight, max: list.dataset.maxWeight,
    step: "0.05", value: "1" });
  slider.setAttribute("aria-label", `Strength of ${name}`);
  const value = document.createElement("output");
  value.textContent = "1";
  slider.addEventListener("input", () => { value.textContent = slider.value; });
  const remove = document.createElement("button");
  Object.assign(remove, { type: "button", textContent: "Remove" });
  remove.setAttribute("aria-label", `Remove ${name}`);
  remove.addEventListener("click", () => { row.remove(); refresh(); });
  row.append(title, slider, value, remove);
  list.append(row);
  refresh();
}

export function chosenLoras() {
  if (!list || $("lora-field").hidden) return null;
  const loras = chosen();
  return loras.length ? JSON.stringify(loras) : null;
}

if (list) {
  $("lora-add").addEventListener("click", () => {
    const option = $("lora-pick").selectedOptions[0];
    if (option && !option.disabled) addRow(option.value);
  });
  // A LoRA of the old family does not fit a model of another one: it goes.
  $("model")?.addEventListener("change", () => {
    for (const row of list.querySelectorAll("li")) {
      const option = [...$("lora-pick").options].find((o) => o.value === row.dataset.name);
      if (option && option.dataset.family !== modelFamily()) row.remove();
    }
    refresh();
  });
  refresh();
}
