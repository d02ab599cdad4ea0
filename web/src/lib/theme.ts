// Light and dark theme: the system's choice (prefers-color-scheme) unless the user picked one
// with the toggle, which is kept in localStorage. styles.css reads `data-theme` on <html>.

export type Theme = 'light' | 'dark';

const THEME_STORAGE_KEY = 'cmp_theme';

function storedTheme(): Theme | null {
  try {
    const value = localStorage.getItem(THEME_STORAGE_KEY);
    return value === 'light' || value === 'dark' ? value : null;
  } catch {
    return null;
  }
}

function systemTheme(): Theme {
  return typeof window !== 'undefined' && window.matchMedia?.('(prefers-color-scheme: dark)').matches
    ? 'dark'
    : 'light';
}

/** The theme in effect: the user's pick, else the system's. */
export function currentTheme(): Theme {
  return storedTheme() ?? systemTheme();
}

/** Applies the stored pick (or none: the CSS then follows the system). */
export function applyStoredTheme(): void {
  const theme = storedTheme();
  if (theme) document.documentElement.dataset.theme = theme;
  else delete document.documentElement.dataset.theme;
}

export function chooseTheme(theme: Theme): void {
  try {
    localStorage.setItem(THEME_STORAGE_KEY, theme);
  } catch {
    // storage disabled: the choice lasts for this page only
  }
  document.documentElement.dataset.theme = theme;
}
