// The API keys page: a new key is shown once. The page that shows it answers a POST; it
// turns its history entry into a plain GET, so a reload asks for the page again instead of
// posting the form again (which would create another key).
if (document.getElementById("new-key")) history.replaceState(null, "", location.href);

// "Copy" buttons: copy the text of the element named by data-copy, and say so.
// The Clipboard API needs a secure context (https or localhost); elsewhere the text is
// selected and copied with the older command, or left selected for Ctrl+C.

async function copyText(text, element) {
  if (navigator.clipboard && window.isSecureContext) {
    await navigator.clipboard.writeText(text);
    return true;
  }
  const range = document.createRange();
  range.selectNodeContents(element);
  const selection = window.getSelection();
  selection.removeAllRanges();
  selection.addRange(range);
  return document.execCommand("copy");
}

for (const button of document.querySelectorAll("[data-copy]")) {
  button.addEventListener("click", async () => {
    const source = document.getElementById(button.dataset.copy);
    const status = button.parentElement.querySelector("[role=status]");
    let copied = false;
    try {
      copied = await copyText(source.textContent.trim(), source);
    } catch {
      copied = false;
    }
    status.textContent = copied ? "Copied." : "Selected: press Ctrl+C (⌘C) to copy.";
  });
}
