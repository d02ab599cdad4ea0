// Switches between the light and dark theme; the pick is kept in localStorage. A toggle
// button: its name stays "Dark theme" and aria-pressed says whether it is on.
import { useState } from 'react';
import { chooseTheme, currentTheme, type Theme } from '../lib/theme';

export function ThemeToggle() {
  const [theme, setTheme] = useState<Theme>(currentTheme);
  const next: Theme = theme === 'dark' ? 'light' : 'dark';
  return (
    <button
      type="button"
      aria-pressed={theme === 'dark'}
      onClick={() => {
        chooseTheme(next);
        setTheme(next);
      }}
    >
      Dark theme
    </button>
  );
}
