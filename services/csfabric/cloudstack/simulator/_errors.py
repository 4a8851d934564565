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
CS_PERMISSION_DENIED = 4365
CS_RESOURCE_ALLOCATION = 4370

# ApiErrorCode: ACCOUNT_ERROR (PermissionDeniedException, e.g. a project that is not Active)
# and RESOURCE_ALLOCATION_ERROR (ResourceAllocationException: over a resource limit).  532
# (ACCOUNT_RESOURCE_LIMIT_ERROR) is AccountLimitException's, which no limit check raises.
ACCOUNT_ERROR = 531
RESOURCE_ALLOCATION_ERROR = 535

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

    def job_body(self) -> dict[str, Any]:
        """A failed job's ``jobresult``: ApiAsyncJobDispatcher builds a fresh ExceptionResponse
        with only the error code and text, so there is no ``cserrorcode``."""
        return {"uuidList": [], "errorcode": self.errorcode, "errortext": self.errortext}


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


def invalid_uuid(command: str, name: str, value: str) -> ApiError:
    """ParamProcessWorker's answer to a uuid parameter naming no entity (at call time)."""
    return ApiError(
        431,
        f"Unable to execute API command {command.lower()} due to invalid value. Invalid "
        f"parameter {name} value={value} due to incorrect long value format, or entity does "
        "not exist or due to incorrect parameter annotation for the field in api cmd class.",
        CS_SERVER_API,
    )


def permission_denied(text: str) -> ApiError:
    # ApiServer wraps PermissionDeniedException in ACCOUNT_ERROR, keeping the cause's code.
    return ApiError(ACCOUNT_ERROR, text, CS_PERMISSION_DENIED)


def over_limit(text: str) -> ApiError:
    return ApiError(RESOURCE_ALLOCATION_ERROR, text, CS_RESOURCE_ALLOCATION)
