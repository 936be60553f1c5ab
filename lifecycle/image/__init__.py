"""Where images live: references, the layout resolver, and the image stores."""
