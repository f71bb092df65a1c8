"""The fake KSR under the name the tests import; it lives in the tests.kemi.fake package."""

from tests.kemi.fake import *  # noqa: F403
from tests.kemi.fake import __all__ as __all__
