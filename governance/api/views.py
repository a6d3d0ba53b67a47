from drf_spectacular.utils import extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from config.api import validated
from governance.api.serializers import TokenInput, TokenOutput
from governance.services.tokens import token_issue


class TokenApi(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "auth"

    @extend_schema(request=TokenInput, responses=TokenOutput, auth=[])
    def post(self, request):
        data = validated(TokenInput, request.data)
        token = token_issue(request=request, username=data["username"], password=data["password"])
        return Response({"token": token.key})
