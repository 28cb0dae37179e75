# placeholder: helper-3 writes the real bootstrap
