"""dedup: near-duplicate news article clustering.

Story clusters of wire rewrites (MinHash/LSH candidates, verified by
weighted-word cosine and text reuse) and, per story, what each variant adds
(scikit-learn TF-IDF over sentences).
"""

from .records import Article, Assignment, BadInput, Story
from .service import Deduper
from .settings import Settings

__all__ = ["Article", "Assignment", "BadInput", "Deduper", "Settings", "Story"]
__version__ = "0.1.0"
