"""The foundation every room may use and that uses no room: the error tree, the named-item
registry, the memoised ``email`` header machinery and the terminal progress line."""
