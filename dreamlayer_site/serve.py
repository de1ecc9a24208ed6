"""``python -m dreamlayer_site.serve``: daphne's own command line, whose access log never
writes an API key (a key pasted into a URL by mistake is logged as ``dl_xxxxxxxx.[redacted]``).

Websocket paths are logged without their query string by daphne itself, so the
``?api_key=`` a browser-less client may put on the handshake is never written either.
"""

from daphne import cli
from daphne.access import AccessLogGenerator

from accounts.keyformat import redact


class RedactingAccessLog(AccessLogGenerator):
    def write_entry(self, host, date, request, *args, **kwargs) -> None:
        super().write_entry(host, date, redact(request), *args, **kwargs)


def main() -> None:
    cli.AccessLogGenerator = RedactingAccessLog  # the class daphne's CLI instantiates
    cli.CommandLineInterface.entrypoint()


if __name__ == "__main__":
    main()
