// The studio's result: before / after, samples, download, and "use as input".

import { input, loadImage } from "./canvas.js";
import { $ } from "./dom.js";

// ----- result ------------------------------------------------------------------------------
export function showResult(id, message) {
  const images = message.images;
  const seeds = message.metadata.seeds || [message.metadata.seed];
  $("result-panel").hidden = false;
  $("before").src = input.imageUrl;
  $("result-link").href = `/history/${id}/`;
  const strip = $("samples-strip");
  strip.replaceChildren();
  const show = (index) => {
    $("after").src = images[index];
    $("download").href = images[index];
    $("download").setAttribute("download", `dreamlayer-${id}-${index}.png`);
    $("result-seed").value = seeds[index];
  };
  images.forEach((url, index) => {
    if (images.length < 2) return;
    const button = document.createElement("button");
    button.type = "button";
    button.className = "thumb";
    button.setAttribute("aria-label", `Show sample ${index + 1}`);
    const img = document.createElement("img");
    img.src = url;
    img.alt = `Sample ${index + 1}`;
    button.append(img);
    button.addEventListener("click", () => show(index));
    strip.append(button);
  });
  show(0);
}

$("compare-slider").addEventListener("input", (e) => {
  $("after").style.clipPath = `inset(0 0 0 ${e.target.value}%)`;
});
$("after").style.clipPath = "inset(0 0 0 50%)";

$("use-as-input").addEventListener("click", async () => {
  const response = await fetch($("after").src, { credentials: "same-origin" });
  const blob = await response.blob();
  await loadImage(new File([blob], "result.png", { type: "image/png" }));
  $("result-panel").hidden = true;
});
