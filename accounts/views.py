"""Account pages: sign up, API keys (the key is shown once, right after creation)."""

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.cache import patch_cache_control
from django.views.decorators.http import require_POST

from .forms import ApiKeyForm, SignUpForm
from .models import ApiKey
from .pathkey import key_base_path
from .services import (
    api_key_create,
    api_key_revoke,
    webhook_secret_of,
    webhook_secret_rotate,
)
from .throttles import SIGNUPS, request_address, wait_words


def signup(request):
    form = SignUpForm(request.POST or None)
    if request.method == "POST":
        address = request_address(request)
        wait = SIGNUPS.wait(address)
        if wait:
            return render(
                request,
                "accounts/throttled.html",
                {
                    "title": "Too many new accounts",
                    "reason": "Too many accounts were created from your address",
                    "wait": wait_words(wait),
                },
                status=429,
            )
        if form.is_valid():
            user = form.save()
            SIGNUPS.hit(address)
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            return redirect("home")
    return render(request, "accounts/signup.html", {"form": form})


@login_required
def api_keys(request):
    form = ApiKeyForm(request.POST or None)
    new_key = None
    if request.method == "POST" and form.is_valid():
        _, new_key = api_key_create(
            user=request.user,
            name=form.cleaned_data["name"],
            expires_in_days=form.cleaned_data["expires_in_days"],
        )
        form = ApiKeyForm()
    keys = ApiKey.objects.filter(user=request.user).order_by("-created")
    context = {
        "form": form,
        "keys": keys,
        "new_key": new_key,
        # ADR 8: the base URL with the key in the path, for clients that send no credentials.
        "new_key_url": request.build_absolute_uri(key_base_path(new_key)) if new_key else None,
        "webhook_secret": webhook_secret_of(user=request.user),
    }
    response = render(request, "accounts/api_keys.html", context)
    patch_cache_control(response, private=True)
    if new_key:
        patch_cache_control(response, no_store=True)  # Back must not show the key again
    return response


@login_required
@require_POST
def api_key_revoke_view(request, prefix: str):
    key = ApiKey.objects.filter(user=request.user, prefix=prefix).first()
    if key is None:
        raise Http404("No such key.")
    if not key.revoked:
        api_key_revoke(api_key=key)
        messages.success(request, f"The key {key.prefix}… is revoked.")
    return redirect("accounts:api-keys")


@login_required
@require_POST
def webhook_secret_rotate_view(request):
    webhook_secret_rotate(user=request.user)
    messages.success(
        request, "Your webhook secret is replaced: deliveries from now on are signed with it."
    )
    return redirect("accounts:api-keys")
