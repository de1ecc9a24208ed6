import getpass

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from inpainting.errors import ClientError
from inpainting.models import INSTALL_KINDS, LibraryModel, ModelInstall
from inpainting.services import installs
from inpainting.services.library import (
    library_model_remove,
    library_models_described,
    library_scan,
)
from inpainting.services.mask_models import library_mask_models_described


class Command(BaseCommand):
    help = (
        "The model library: `models scan` records every diffusers folder and .safetensors "
        "checkpoint under MODELS_DIR (and the Hugging Face cache) with its family, the LoRAs, "
        "ControlNets and mask models; `models list` shows the enabled models and mask models; "
        "`models starters` the starter list; `models install <key, repo id or URL>` downloads "
        "one (with a progress bar; Ctrl-C stops it, installing again resumes); `models remove "
        "<name>` deletes a model's files and row; `models token` sets the Hugging Face token; "
        "`models lama-auto` installs LaMa unless it is there, LAMA_AUTO_INSTALL is false or "
        "the hub does not answer (what `make run` runs at its start)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "action",
            choices=("scan", "list", "starters", "install", "remove", "token", "lama-auto"),
        )
        parser.add_argument("target", nargs="?", help="install: what; remove: the model's name")
        parser.add_argument("--kind", choices=[kind for kind, _ in INSTALL_KINDS], default="")
        parser.add_argument("--revision", default="")
        parser.add_argument("--subfolder", default="")
        parser.add_argument("--name", default="", help="install: its name in the library")

    def handle(self, *args, action: str, target: str | None, **options):
        if action in ("install", "remove") and not target:
            raise CommandError(f"`models {action}` needs what to {action}.")
        if action == "install":
            return self._install(target, options)
        if action == "lama-auto":
            installs.lama_auto_install(say=lambda line: self.stdout.write(line))
            return
        if action == "remove":
            return self._remove(target, options["kind"])
        if action == "token":
            installs.hub_token_set(token=getpass.getpass("Hugging Face token (empty: remove): "))
            self.stdout.write(f"token: {installs.hub_token_source() or 'none'}")
            return
        if action == "starters":
            for entry in installs.install_starters_described():
                licence = entry["licence"]
                mark = "" if licence["commercial"] is not False else " (non-commercial)"
                self.stdout.write(
                    f"{entry['key']}: {entry['label']}, {entry['kind']}, {entry['size_gb']:g} GB, "
                    f"{entry['vram']} GPU memory, {licence['name']}{mark}"
                    f"{', gated' if entry['gated'] else ''}"
                )
            return
        if action == "scan":
            report = library_scan()
            for label, names in (
                ("added", report.added),
                ("updated", report.updated),
                ("renamed", report.renamed),
                ("unchanged", report.unchanged),
                ("missing (marked not present)", report.missing),
            ):
                for name in names:
                    self.stdout.write(f"{label}: {name}")
            for name, why in report.refused:
                self.stdout.write(self.style.WARNING(f"refused: {name}: {why}"))
            self.stdout.write(self.style.SUCCESS(f"default: {report.default or '(none)'}"))
            return
        for item in library_models_described(offered=False):
            mark = " (default)" if item["default"] else ""
            self.stdout.write(
                f"{item['name']}{mark}: {item['family']}, {item['kind']}, {item['layout']}, "
                f"{item['size_bytes'] / 1e9:.2f} GB, sha256 {item['sha256'][:12]}, "
                f"{item['workers'] if item['workers'] is not None else '?'} live worker(s)"
            )
        for item in library_mask_models_described():
            self.stdout.write(
                f"masks/{item['name']}: {item['family_label']}, selects by "
                f"{', '.join(item['methods']) or 'nothing alone'}, {item['layout']}, "
                f"{item['size_bytes'] / 1e6:.1f} MB, sha256 {item['sha256']}"
            )

    def _install(self, target: str, options: dict) -> None:
        try:
            install = installs.install_create(
                user=None,
                source=target,
                kind=options["kind"],
                revision=options["revision"],
                subfolder=options["subfolder"],
                name=options["name"],
                queued=False,
            )
        except ClientError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(f"Installing {install.source} as {install.kind} {install.name} …")
        bar = tqdm(unit="B", unit_scale=True, unit_divisor=1024, file=self.stdout)

        def show(progress: ModelInstall) -> None:
            if progress.bytes_total is not None:
                bar.total = progress.bytes_total
            bar.update(progress.bytes_done - bar.n)

        try:
            install = installs.install_run(install_id=str(install.pk), observer=show)
        except KeyboardInterrupt:
            installs.install_interrupted(install=install)
            raise CommandError("Interrupted; run the same install again to resume.") from None
        finally:
            bar.close()
        if install.status != ModelInstall.Status.SUCCEEDED:
            raise CommandError(f"{install.status}: {install.error}")
        self.stdout.write(
            self.style.SUCCESS(f"installed: {install.name} (sha256 {install.sha256 or '-'})")
        )

    def _remove(self, name: str, kind: str) -> None:
        models = LibraryModel.objects.filter(name=name)
        if kind:
            models = models.filter(kind=kind)
        found = list(models)
        if not found:
            raise CommandError(f"No model named {name!r} in the library.")
        if len(found) > 1:
            kinds = ", ".join(m.kind for m in found)
            raise CommandError(f"{name!r} names models of several kinds ({kinds}): add --kind.")
        freed = library_model_remove(model=found[0])
        self.stdout.write(self.style.SUCCESS(f"removed: {name} ({freed / 1e9:.2f} GB freed)"))
