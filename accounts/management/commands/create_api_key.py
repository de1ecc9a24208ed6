from django.core.management.base import BaseCommand, CommandError

from accounts.models import User
from accounts.services import api_key_create


class Command(BaseCommand):
    help = "Create an API key for USERNAME and print it once (it is stored only as a hash)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="cli")
        parser.add_argument("--expires", type=int, default=None, metavar="DAYS")

    def handle(self, *args, username: str, name: str, expires: int | None, **options):
        try:
            user = User.objects.get(username=username)
        except User.DoesNotExist:
            raise CommandError(f"No user named {username!r}.") from None
        if expires is not None and expires <= 0:
            raise CommandError("--expires must be a positive number of days.")
        _, key = api_key_create(user=user, name=name, expires_in_days=expires)
        self.stdout.write(key)
