"""Point Transformer V3 aggregation network with LSM's cross-model fusion."""
from .point_transformer import PointTransformer
from .sparse_conv import SparseGrid, SubMConv3d, spconv_available

__all__ = ["PointTransformer", "SparseGrid", "SubMConv3d", "spconv_available"]
