// Notices that need saying once (no diffusion model here): whole on this browser's first view,
// then their summary line only, which opens on a click. localStorage remembers what was seen;
// where it is off, the notice is whole each time.

const PREFIX = "dreamlayer:seen:";

export function initNotices() {
  for (const notice of document.querySelectorAll("details[data-seen-key]")) {
    const key = PREFIX + notice.dataset.seenKey;
    let seen = false;
    try {
      seen = localStorage.getItem(key) !== null;
      localStorage.setItem(key, new Date().toISOString());
    } catch {
      // storage refused (a private window's settings): whole every time
    }
    notice.open = !seen;
  }
}
