// pydata-sphinx-theme reads an empty colour mode on a reader's first visit and logs a console error; start in auto.
if (!document.documentElement.dataset.mode) document.documentElement.dataset.mode = "auto";
