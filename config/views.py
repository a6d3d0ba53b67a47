from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from governance.selectors.teams import teams_for_user


@login_required
def home(request):
    return render(request, "home.html", {"teams": teams_for_user(user=request.user)})
