"""Everything that writes, one module per job:

- ``generations``: create (with idempotency), re-run, cancel, delete;
- ``runs``: claim, run with heartbeat and progress, succeed, fail (the worker side);
- ``reaper``: take over jobs whose worker died, resend messages Redis lost;
- ``masks``: the effective-mask preview and masks without weights (GrabCut, flood);
- ``models``: loading the diffusion model in a worker and reporting it;
- ``webhooks``: signed deliveries of a job's final answer;
- ``files``: storing and reading source images and masks; ``queue``: sending task messages.

State changes are conditional updates (``queued`` -> ``running`` -> terminal), so a
redelivered task message, a late cancel or a double click never produces two outcomes.
Client mistakes are ``inpainting.errors.ClientError`` with the field named at the source.
"""
