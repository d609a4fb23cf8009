"""The admin listener's HTML: the run page and the run list (templates in `render`, assets beside it)."""
