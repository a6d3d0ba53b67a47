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


class TeamFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Team
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"team-{n}")
    name = factory.LazyAttribute(lambda t: t.slug.title())


def member_of(team: Team, *role_keys: str, username: str | None = None):
    user = UserFactory(**({"username": username} if username else {}))
    for key in role_keys:
        role, _ = Role.objects.get_or_create(key=key, defaults={"label": key.replace("_", " ").title()})
        Membership.objects.get_or_create(user=user, team=team, role=role)
    return user
