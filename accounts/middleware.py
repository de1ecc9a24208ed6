"""Failed log-ins counted per client address, across user names (``THROTTLE_LOGIN_FAILURES``).

Every log-in form (the site's and the admin's) goes through ``django.contrib.auth``'s
``authenticate``, which sends ``user_login_failed``: that is where a failure is counted (the
receiver is registered when Django loads this middleware, i.e. in every web process). A
log-in POST from an address over the limit is answered 429 before any password is checked.
"""

from __future__ import annotations

from django.contrib.auth.signals import user_login_failed
from django.dispatch import receiver
from django.shortcuts import render
from django.urls import reverse

from .throttles import LOGIN_FAILURES, request_address, wait_words


@receiver(user_login_failed)
def count_failed_login(sender, credentials, request=None, **kwargs) -> None:
    if request is not None:
        LOGIN_FAILURES.hit(request_address(request))


class LoginThrottleMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response
        self.login_paths = None

    def __call__(self, request):
        if self.login_paths is None:
            self.login_paths = {reverse("accounts:login"), reverse("admin:login")}
        if request.method == "POST" and request.path in self.login_paths:
            wait = LOGIN_FAILURES.wait(request_address(request))
            if wait:
                return render(
                    request,
                    "accounts/throttled.html",
                    {
                        "title": "Too many failed log-ins",
                        "reason": "Too many failed log-ins came from your address",
                        "wait": wait_words(wait),
                    },
                    status=429,
                )
        return self.get_response(request)
