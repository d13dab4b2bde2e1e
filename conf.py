"""Sphinx configuration for the TensorFlow Serving chapter (Simplified Chinese).

Built by the Makefile as:
    python -m sphinx -W -n --keep-going -b html -c . docs _build/html
so this file lives at the repository root while the sources live in docs/.  Every path in the
sources (``literalinclude``, images) is relative to the .rst file that names it, i.e. to docs/.
"""
import os

ROOT = os.path.dirname(os.path.abspath(__file__))
DOCS = os.path.join(ROOT, "docs")

project = "简单粗暴 TensorFlow 2 · TensorFlow Serving"
author = "简单粗暴 TensorFlow 2 的作者与本项目的贡献者"
copyright = "2019-2026, " + author
release = "2026"

language = "zh_CN"
root_doc = "index"
exclude_patterns = ["_outputs", "_build", "README.md", "**/.ipynb_checkpoints"]
templates_path = []

extensions = []

# Highlighting: Pygments, with a light and a dark style (furo switches with the reader's theme).
pygments_style = "friendly"
pygments_dark_style = "monokai"
highlight_language = "none"   # plain "::" blocks (shell output, ASCII art) stay uncoloured

# -W -n: every cross-reference must resolve.  Nothing is ignored on purpose.
nitpicky = True
nitpick_ignore = []

html_theme = "furo"
html_title = "TensorFlow Serving（简单粗暴 TensorFlow 2）"
html_static_path = ["docs/_static"]
html_css_files = ["custom.css"]
html_show_sourcelink = False
html_last_updated_fmt = None
html_theme_options = {
    "navigation_with_keys": True,
}

# Chinese full-text search: Sphinx's zh splitter uses jieba (installed from requirements.txt).
# A small user dictionary keeps this chapter's terms whole (e.g. 热更新, 签名, 批处理).
html_search_language = "zh"
html_search_options = {"dict": os.path.join(DOCS, "_static", "jieba_userdict.txt")}
