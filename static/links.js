// Link snippets for an image. Keep in step with templates/_links.html.

const HTML_ESCAPES = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export const escapeHtml = (s) => String(s).replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]);

/** Markdown alt text: backslash-escape \ [ ] and fold line breaks into spaces. */
export const escapeMarkdownAlt = (s) => String(s).replace(/[\\[\]]/g, '\\$&').replace(/\r\n|[\r\n]/g, ' ');

const percent = (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`;

/**
 * formatLink(kind, image) for kind in url | page | markdown | html | bbcode;
 * image has public_url, filename and optionally page_url, width, height.
 */
export function formatLink(kind, image) {
  const url = String(image.public_url || '');
  const name = String(image.filename || '');
  switch (kind) {
    case 'url':
      return url;
    case 'page':
      return String(image.page_url || '');
    case 'markdown':
      return `![${escapeMarkdownAlt(name)}](${url.replace(/[ ()]/g, percent)})`;
    case 'html': {
      const w = Number(image.width);
      const h = Number(image.height);
      const size = w && h ? ` width="${w}" height="${h}"` : '';
      return `<img src="${escapeHtml(url)}" alt="${escapeHtml(name)}"${size}>`;
    }
    case 'bbcode':
      return `[img]${url.replace(/[[\]]/g, percent)}[/img]`;
    default:
      throw new Error(`Unknown link format: ${kind}`);
  }
}
