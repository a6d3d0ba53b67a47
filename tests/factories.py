import factory
from django.contrib.auth import get_user_model

from governance.models import Membership, Role, Team

PASSWORD = "correct horse battery"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.org")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):
        if create:
            obj.save()

    @factory.post_generation
    def certified(obj, create, extracted, **kwargs):
        """Users have certified their electronic signature (docs/part11.md) unless ``certified=False``."""
        if create and extracted is not False:
            from approvals.models import SignatureCertification
            from approvals.services.signing_controls import CURRENT_STATEMENT

            if not SignatureCertification.objects.filter(user=obj).exists():
                SignatureCertification.objects.create(
                    user=obj,
                    statement_version=CURRENT_STATEMENT.version,
                    statement_digest=CURRENT_STATEMENT.digest,
                    certified_at=obj.date_joined,
                )


class TeamFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Team
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"team-{n}")
    name = factory.LazyAttribute(lambda t: t.slug.title())


def member_of(team: Team, *role_keys: str, username: str | None = None, certified: bool = True):
    user = UserFactory(**({"username": username} if username else {}), certified=certified)
    for key in role_keys:
        role, _ = Role.objects.get_or_create(key=key, defaults={"label": key.replace("_", " ").title()})
        Membership.objects.get_or_create(user=user, team=team, role=role)
    return user
