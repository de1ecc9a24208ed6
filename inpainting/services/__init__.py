"""Everything that writes, one module per job:

- ``generations``: create (with idempotency), re-run, cancel, delete;
- ``runs``: claim, run with heartbeat and progress, succeed, fail (the worker side);
- ``reaper``: take over jobs whose worker died, resend messages Redis lost;
- ``masks``: the effective-mask preview and masks without weights (GrabCut, flood);
- ``models``: loading the diffusion model in a worker and reporting it;
- ``webhooks``: signed deliveries of a job's final answer;
- ``files``: storing and reading source images and masks; ``queue``: sending task messages;
- ``selection``: object selection with mask models (the web side and the ``select`` worker);
- ``images``: image bytes as the compatible APIs hand them over; ``links``: signed image
  links that work without a key (OpenAI's ``response_format=url``).

State changes are conditional updates (``queued`` -> ``running`` -> terminal), so a
redelivered task message, a late cancel or a double click never produces two outcomes.
Client mistakes are ``inpainting.errors.ClientError`` with the field named at the source.
"""
