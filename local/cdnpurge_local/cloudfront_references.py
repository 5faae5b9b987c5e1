"""CloudFront's documented `CallerReference` rule, for moto (which ignores the reference).

The CreateInvalidation API reference (`InvalidationBatch.CallerReference`):

- a second request with the same `CallerReference` and the same batch creates nothing: CloudFront returns
  the invalidation created the first time;
- the same `CallerReference` with different paths is refused with `InvalidationBatchAlreadyExists`. The
  reference gives no status and botocore's model has no shape for it; every other CloudFront
  `...AlreadyExists` error is HTTP 409 (Conflict), and so is this one here.

moto 5.x creates a new invalidation for every request, so a purge whose reference repeats an earlier one
(reported accepted by AWS, and nothing new invalidated) would pass every test. `enforce_caller_references`
patches moto's CloudFront backend in the process that serves it (`moto_launcher`, hence every client of the
local stack's moto server), following the documented part only: the reference is compared per
distribution, and "the same batch" means the same paths in the same order (the documentation speaks of
"the content of any Path"; our adapter always sends them sorted).
"""

from __future__ import annotations

from typing import Any

ALREADY_EXISTS = "InvalidationBatchAlreadyExists"
CONFLICT = 409


def existing_invalidation(invalidations: list[Any], paths: list[str], caller_ref: str) -> Any | None:
    """The invalidation created earlier with `caller_ref` (None: none was); raises ValueError when that
    reference came with other paths."""
    for invalidation in invalidations:
        if invalidation.caller_ref != caller_ref:
            continue
        if list(invalidation.paths) != list(paths):
            raise ValueError(f"CallerReference {caller_ref[:80]!r} was already used for a different invalidation batch")
        return invalidation
    return None


def enforce_caller_references() -> None:
    """Patch moto's `CloudFrontBackend.create_invalidation` to follow the documented reference rule."""
    from moto.cloudfront.exceptions import CloudFrontException
    from moto.cloudfront.models import CloudFrontBackend

    class InvalidationBatchAlreadyExists(CloudFrontException):
        code = ALREADY_EXISTS

    create = CloudFrontBackend.create_invalidation
    if getattr(create, "enforces_caller_references", False):
        return
    _answer_conflicts_with_409()

    def create_invalidation(self: Any, dist_id: str, paths: list[str], caller_ref: str) -> Any:
        self.get_distribution(dist_id)  # NoSuchDistribution first, as CloudFront answers
        try:
            earlier = existing_invalidation(self.invalidations.get(dist_id, []), paths, caller_ref)
        except ValueError as exc:
            raise InvalidationBatchAlreadyExists(ALREADY_EXISTS, str(exc)) from None
        return earlier if earlier is not None else create(self, dist_id, paths, caller_ref)

    create_invalidation.enforces_caller_references = True  # type: ignore[attr-defined]
    CloudFrontBackend.create_invalidation = create_invalidation  # type: ignore[method-assign]


def _answer_conflicts_with_409() -> None:
    """moto serialises an error whose code its model lacks with HTTP 400: give this one its 409."""
    from moto.core import serialize
    from moto.core.errors import ErrorShape

    error_model = getattr(serialize, "get_error_model")  # imported there from moto.core.errors  # noqa: B009

    def get_error_model(exception: Exception, service_model: Any) -> Any:
        if getattr(exception, "code", None) != ALREADY_EXISTS:
            return error_model(exception, service_model)
        model = {"code": ALREADY_EXISTS, "httpStatusCode": CONFLICT, "senderFault": True}
        shape = {"exception": True, "type": "structure", "members": {}, "error": model}
        return ErrorShape(shape_name=ALREADY_EXISTS, shape_model=shape)

    setattr(serialize, "get_error_model", get_error_model)  # noqa: B010
