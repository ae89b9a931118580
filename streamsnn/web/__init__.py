"""Static files of the live view (index.html), shipped as package data."""
