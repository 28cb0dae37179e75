"""item07: an import-time error two imports deep propagates unchanged."""
import raises_at_import  # noqa: F401
