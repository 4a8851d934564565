"""CloudStack API errors as the management server renders them.

CloudStack answers every failed call with ``{"<command>response": {"uuidList": [],
"errorcode": N, "cserrorcode": M, "errortext": "..."}}`` and HTTP status N (ApiServer's
``getSerializedApiError``).  Signature failures come from ApiServlet without a
``cserrorcode``; ``ServerApiException`` (431 missing parameter, 432 unknown command) carries
9999; ``InvalidParameterValueException`` 4350.
"""

from __future__ import annotations

from typing import Any

# CSExceptionErrorCode values for the exception classes the simulator imitates.
CS_INVALID_PARAMETER = 4350
CS_SERVER_API = 9999
CS_CLOUD_RUNTIME = 4250

AUTH_FAILED_TEXT = "unable to verify user credentials and/or request signature"
UNKNOWN_COMMAND_TEXT = "The given command does not exist or it is not available for user"


class ApiError(Exception):
    """An API failure; ``cserrorcode=None`` omits the key (ApiServlet's 401 does)."""

    def __init__(self, errorcode: int, errortext: str, cserrorcode: int | None = 4350) -> None:
        super().__init__(f"{errorcode}: {errortext}")
        self.errorcode = errorcode
        self.errortext = errortext
        self.cserrorcode = cserrorcode

    def body(self) -> dict[str, Any]:
        """The inner object, in the key order CloudStack's Gson output shows."""
        out: dict[str, Any] = {"uuidList": [], "errorcode": self.errorcode}
        if self.cserrorcode is not None:
            out["cserrorcode"] = self.cserrorcode
        out["errortext"] = self.errortext
        return out


def auth_failed() -> ApiError:
    return ApiError(401, AUTH_FAILED_TEXT, None)


def unknown_command() -> ApiError:
    # Checked before the signature, so an unsigned request for a bogus command gets 432.
    return ApiError(432, UNKNOWN_COMMAND_TEXT, CS_SERVER_API)


def missing_parameter(command: str, name: str) -> ApiError:
    # ParamProcessWorker's wording: the command name without its "response" suffix.
    return ApiError(
        431,
        f"Unable to execute API command {command.lower()} due to missing parameter {name}",
        CS_SERVER_API,
    )


def invalid_parameter(text: str) -> ApiError:
    return ApiError(431, text, CS_INVALID_PARAMETER)


def not_found(kind: str, uuid: str) -> ApiError:
    return invalid_parameter(f"Unable to find {kind} by id {uuid}")
