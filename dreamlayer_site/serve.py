"""``python -m dreamlayer_site.serve``: daphne's own command line, with two changes.

- The access log never writes an API key (a key pasted into a URL by mistake is logged as
  ``dl_xxxxxxxx.[redacted]``). Websocket paths are logged without their query string by
  daphne itself, so the ``?api_key=`` a browser-less client may put on the handshake is never
  written either.
- Twisted does not parse multipart bodies. Its ``Request`` parses every multipart POST with
  the ``email`` package into ``request.args``, which daphne never reads; Django parses the body
  again. Skipping it saves about 25 ms on a 600 KB upload (``bench/overhead.py``), and a
  malformed body gets Django's 400 with a message instead of Twisted's bare one.
"""

from daphne import cli, http_protocol
from daphne.access import AccessLogGenerator

from accounts.keyformat import redact


class RedactingAccessLog(AccessLogGenerator):
    def write_entry(self, host, date, request, *args, **kwargs) -> None:
        super().write_entry(host, date, redact(request), *args, **kwargs)


class BodyLeftToDjangoRequest(http_protocol.WebRequest):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, parsePOSTFormSubmission=False, **kwargs)


def main() -> None:
    cli.AccessLogGenerator = RedactingAccessLog  # the class daphne's CLI instantiates
    http_protocol.WebRequest = BodyLeftToDjangoRequest  # the class daphne's factory builds
    cli.CommandLineInterface.entrypoint()


if __name__ == "__main__":
    main()
